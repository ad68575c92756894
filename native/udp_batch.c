/*
 * udp_batch: a UDP socket that receives and sends datagrams in batches (recvmmsg/sendmmsg) and
 * enters JavaScript once per batch, not once per datagram (dns-performance.md §3b: node:dgram's
 * per-datagram syscall + callback floor costs more than dnsmasq's whole answer).
 *
 * Memory contract with JS. JS allocates every buffer and passes it to open(); C keeps a reference to
 * each, so they live as long as the socket. Per slot i (of `slots`):
 *   in    [i*inSize,   +inSize)    the datagram's bytes (at most inSize; longer ones are flagged truncated)
 *   out   [i*outSize,  +outSize)   the reply JS writes, sent by sendmmsg when the callback returns
 *   peers [i*PEER_SIZE, +PEER_SIZE) the sender: raw sockaddr at 0 (SOCKADDR_SIZE bytes, for sendTo after
 *                                  the callback), its text form at PEER_TEXT_AT (as node:dgram's rinfo)
 *   meta  Int32 [i*4 + 0] datagram length in the slot, 0..inSize
 *              [i*4 + 1] flags: FLAG_TRUNCATED when the datagram did not fit
 *              [i*4 + 2] sender's port
 *              [i*4 + 3] length of the sender's text form
 *   outLen Int32 [i]     reply length JS set (0 = no reply); anything outside 0..outSize is not sent
 * Every length JS sees was bounded here first, and every length JS hands back is checked again here.
 * A slot is valid only until the callback returns: the next batch overwrites it.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PEER_SIZE 96
#define SOCKADDR_SIZE 28 /* sizeof(struct sockaddr_in6); a sockaddr_in is shorter */
#define PEER_TEXT_AT 32
#define PEER_TEXT_MAX (PEER_SIZE - PEER_TEXT_AT)
#define META_STRIDE 4
#define FLAG_TRUNCATED 1
#define MAX_SLOTS 1024

typedef struct {
  napi_env env;
  int fd;
  int family;
  uv_poll_t poll;
  uint32_t slots, in_size, out_size, rounds;
  uint8_t *in, *out, *peers;
  int32_t *meta, *out_len;
  napi_ref refs[6]; /* in, out, peers, meta, outLen, callback */
  napi_async_context async;
  struct mmsghdr *rmsg, *smsg;
  struct iovec *riov, *siov;
  struct sockaddr_storage *from;
  int polling, in_callback, close_requested, closed;
  int released; /* fd closed and buffers let go: only the struct is left, for a handle JS may still hold */
  int orphaned; /* JS dropped its handle: the struct goes as soon as it is released */
  /* counters JS reads with stats() */
  double batches, datagrams, truncated, send_errors, recv_errors;
  int last_send_errno;
} sock_t;

#define CHECK(call)                                                                  \
  do {                                                                               \
    if ((call) != napi_ok) return NULL;                                              \
  } while (0)

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[128];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value text, error; /* JS names the code from errno (util.getSystemErrorName) */
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
  napi_create_error(env, NULL, text, &error);
  napi_value errno_v;
  napi_create_int32(env, -err, &errno_v);
  napi_set_named_property(env, error, "errno", errno_v);
  napi_throw(env, error);
  return NULL;
}

static int prop(napi_env env, napi_value obj, const char *name, napi_value *out) {
  bool has = false;
  if (napi_has_named_property(env, obj, name, &has) != napi_ok || !has) return 0;
  return napi_get_named_property(env, obj, name, out) == napi_ok;
}

static uint32_t prop_u32(napi_env env, napi_value obj, const char *name, uint32_t dflt) {
  napi_value v;
  uint32_t n;
  if (!prop(env, obj, name, &v) || napi_get_value_uint32(env, v, &n) != napi_ok) return dflt;
  return n;
}

/* The data pointer and byte length of a Buffer or any TypedArray, or 0 when it is neither. */
static int bytes_of(napi_env env, napi_value v, void **data, size_t *len) {
  bool is;
  if (napi_is_buffer(env, v, &is) == napi_ok && is) return napi_get_buffer_info(env, v, data, len) == napi_ok;
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t count, offset;
    napi_value ab;
    if (napi_get_typedarray_info(env, v, &type, &count, data, &ab, &offset) != napi_ok) return 0;
    static const size_t width[] = {1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8, 2}; /* by napi_typedarray_type */
    *len = count * (type < 12 ? width[type] : 1);
    return 1;
  }
  return 0;
}

/* Text form as node:dgram gives it: inet_ntop, plus "%ifname" for a scoped link-local IPv6 sender. */
static int peer_text(const struct sockaddr_storage *sa, char *text, size_t cap, int *port) {
  if (sa->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    *port = ntohs(a->sin_port);
    return inet_ntop(AF_INET, &a->sin_addr, text, cap) ? (int)strlen(text) : 0;
  }
  const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
  *port = ntohs(a->sin6_port);
  if (!inet_ntop(AF_INET6, &a->sin6_addr, text, cap)) return 0;
  size_t n = strlen(text);
  char ifname[IF_NAMESIZE];
  if (IN6_IS_ADDR_LINKLOCAL(&a->sin6_addr) && a->sin6_scope_id > 0 && if_indextoname(a->sin6_scope_id, ifname) &&
      n + 1 + strlen(ifname) < cap) {
    text[n] = '%';
    strcpy(text + n + 1, ifname);
    n = strlen(text);
  }
  return (int)n;
}

/* Everything but the struct itself, which the JS handle may still point to (port/sendTo then say EBADF). */
static void sock_release(sock_t *s) {
  for (int i = 0; i < 6; i++)
    if (s->refs[i]) napi_delete_reference(s->env, s->refs[i]), s->refs[i] = NULL;
  if (s->async) napi_async_destroy(s->env, s->async), s->async = NULL;
  free(s->rmsg);
  free(s->smsg);
  free(s->riov);
  free(s->siov);
  free(s->from);
  s->rmsg = s->smsg = NULL, s->riov = s->siov = NULL, s->from = NULL;
  s->in = s->out = s->peers = NULL, s->meta = s->out_len = NULL;
  s->released = 1;
}

static void on_poll_closed(uv_handle_t *h) {
  sock_t *s = h->data;
  close(s->fd);
  s->fd = -1;
  sock_release(s);
  if (s->orphaned) free(s);
}

/* Stops polling, closes the fd; the struct goes once libuv has let go of the poll handle. */
static void sock_close(sock_t *s) {
  if (s->closed) return;
  s->closed = 1;
  uv_close((uv_handle_t *)&s->poll, on_poll_closed);
}

/* Sends the replies JS left in the out slots of a batch of n; a failing datagram is counted and skipped. */
static void send_replies(sock_t *s, uint32_t n) {
  uint32_t k = 0;
  for (uint32_t i = 0; i < n; i++) {
    int32_t len = s->out_len[i];
    s->out_len[i] = 0;
    if (len <= 0 || (uint32_t)len > s->out_size) continue; /* nothing to send, or a bogus length */
    s->siov[k].iov_base = s->out + (size_t)i * s->out_size;
    s->siov[k].iov_len = (size_t)len;
    memset(&s->smsg[k], 0, sizeof s->smsg[k]);
    s->smsg[k].msg_hdr.msg_name = &s->from[i];
    s->smsg[k].msg_hdr.msg_namelen = s->rmsg[i].msg_hdr.msg_namelen;
    s->smsg[k].msg_hdr.msg_iov = &s->siov[k];
    s->smsg[k].msg_hdr.msg_iovlen = 1;
    k++;
  }
  uint32_t done = 0;
  while (done < k) {
    int r = sendmmsg(s->fd, s->smsg + done, k - done, MSG_DONTWAIT);
    if (r > 0) {
      done += (uint32_t)r;
    } else if (r < 0 && errno == EINTR) {
      continue;
    } else {
      /* EAGAIN (send buffer full), ENOBUFS, EPERM (firewall), ...: this datagram is lost, the rest still go */
      s->send_errors++;
      s->last_send_errno = r < 0 ? errno : EIO;
      done++;
    }
  }
}

/* One recvmmsg into the slots; returns how many datagrams arrived (0 when none is waiting). */
static uint32_t receive_batch(sock_t *s) {
  for (uint32_t i = 0; i < s->slots; i++) {
    s->riov[i].iov_base = s->in + (size_t)i * s->in_size;
    s->riov[i].iov_len = s->in_size;
    memset(&s->rmsg[i], 0, sizeof s->rmsg[i]);
    s->rmsg[i].msg_hdr.msg_name = &s->from[i];
    s->rmsg[i].msg_hdr.msg_namelen = sizeof s->from[i];
    s->rmsg[i].msg_hdr.msg_iov = &s->riov[i];
    s->rmsg[i].msg_hdr.msg_iovlen = 1;
  }
  int r;
  do r = recvmmsg(s->fd, s->rmsg, s->slots, MSG_DONTWAIT, NULL);
  while (r < 0 && errno == EINTR);
  if (r <= 0) {
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) s->recv_errors++;
    return 0;
  }
  uint32_t n = (uint32_t)r;
  for (uint32_t i = 0; i < n; i++) {
    int32_t *m = s->meta + (size_t)i * META_STRIDE;
    uint32_t len = s->rmsg[i].msg_len;
    int trunc = (s->rmsg[i].msg_hdr.msg_flags & MSG_TRUNC) != 0 || len > s->in_size;
    m[0] = (int32_t)(len > s->in_size ? s->in_size : len); /* the kernel never writes past iov_len; say so */
    m[1] = trunc ? FLAG_TRUNCATED : 0;
    if (trunc) s->truncated++;
    uint8_t *peer = s->peers + (size_t)i * PEER_SIZE;
    memset(peer, 0, SOCKADDR_SIZE);
    socklen_t alen = s->rmsg[i].msg_hdr.msg_namelen;
    memcpy(peer, &s->from[i], alen < SOCKADDR_SIZE ? alen : SOCKADDR_SIZE);
    int port = 0;
    m[3] = peer_text(&s->from[i], (char *)peer + PEER_TEXT_AT, PEER_TEXT_MAX, &port);
    m[2] = port;
    s->out_len[i] = 0;
  }
  s->datagrams += n;
  s->batches++;
  return n;
}

/* Calls JS with the batch size; false when the socket was closed from inside the callback. */
static int deliver(sock_t *s, uint32_t n) {
  napi_env env = s->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return 0;
  napi_value cb, recv, count, result;
  napi_get_reference_value(env, s->refs[5], &cb);
  napi_get_global(env, &recv);
  napi_create_uint32(env, n, &count);
  s->in_callback = 1;
  /* make_callback, not call_function: async hooks see a proper scope and promise jobs queued by the
   * handler (replies after a cache miss settle elsewhere) run when it returns, as after a dgram event */
  napi_status st = napi_make_callback(env, s->async, recv, cb, 1, &count, &result);
  s->in_callback = 0;
  if (st == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err); /* the JS wrapper catches per datagram: a throw here is a bug, as in a dgram handler */
  }
  napi_close_handle_scope(env, scope);
  return !s->close_requested;
}

static void on_readable(uv_poll_t *h, int status, int events) {
  sock_t *s = h->data;
  (void)events;
  if (status < 0 || s->closed) return;
  /* Several batches per wakeup while full ones keep coming, then back to the loop so timers and I/O
   * completions (block-log writes) run: `rounds` bounds how long one busy socket holds the loop. */
  for (uint32_t round = 0; round < s->rounds && s->polling; round++) {
    uint32_t n = receive_batch(s);
    if (n == 0) break;
    int open = deliver(s, n);
    send_replies(s, n);
    if (!open) {
      sock_close(s);
      return;
    }
    if (n < s->slots) break; /* the queue is drained: recvmmsg again would only say EAGAIN */
  }
}

static sock_t *unwrap(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, NULL, "not a udp_batch socket");
    return NULL;
  }
  return p;
}

static int take_buffer(napi_env env, napi_value opts, const char *name, size_t need, void **data, napi_ref *ref) {
  napi_value v;
  size_t len = 0;
  if (!prop(env, opts, name, &v) || !bytes_of(env, v, data, &len) || len < need) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s: a buffer of at least %zu bytes is required", name, need);
    napi_throw_range_error(env, NULL, msg);
    return 0;
  }
  return napi_create_reference(env, v, 1, ref) == napi_ok;
}

/* The handle was collected. An open socket keeps serving (its callback holds the JS side) until close. */
static void finalize_external(napi_env env, void *data, void *hint) {
  sock_t *s = data;
  (void)env, (void)hint;
  if (s->released) free(s);
  else s->orphaned = 1;
}

/*
 * open({ host, port, ipv6, reusePort, recvBufferSize, sendBufferSize, slots, inSize, outSize, rounds,
 *        in, out, peers, meta, outLen, onBatch }) → socket handle
 */
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value opts;
  CHECK(napi_get_cb_info(env, info, &argc, &opts, NULL, NULL));
  if (argc < 1) return napi_throw_type_error(env, NULL, "options required"), NULL;
  sock_t *s = calloc(1, sizeof *s);
  if (!s) return napi_throw_error(env, NULL, "out of memory"), NULL;
  s->env = env;
  s->fd = -1;
  napi_value v;
  bool ipv6 = false;
  if (prop(env, opts, "ipv6", &v)) napi_get_value_bool(env, v, &ipv6);
  s->family = ipv6 ? AF_INET6 : AF_INET;
  s->slots = prop_u32(env, opts, "slots", 64);
  s->in_size = prop_u32(env, opts, "inSize", 4096);
  s->out_size = prop_u32(env, opts, "outSize", 4096);
  s->rounds = prop_u32(env, opts, "rounds", 4);
  if (s->slots == 0 || s->slots > MAX_SLOTS || s->in_size < 12 || s->in_size > 65536 || s->out_size < 12 ||
      s->out_size > 65536 || s->rounds == 0) {
    free(s);
    return napi_throw_range_error(env, "EINVAL", "slots 1..1024, inSize/outSize 12..65536, rounds >= 1"), NULL;
  }
  size_t n = s->slots;
  void *p;
  if (!take_buffer(env, opts, "in", n * s->in_size, &p, &s->refs[0])) goto fail;
  s->in = p;
  if (!take_buffer(env, opts, "out", n * s->out_size, &p, &s->refs[1])) goto fail;
  s->out = p;
  if (!take_buffer(env, opts, "peers", n * PEER_SIZE, &p, &s->refs[2])) goto fail;
  s->peers = p;
  if (!take_buffer(env, opts, "meta", n * META_STRIDE * sizeof(int32_t), &p, &s->refs[3])) goto fail;
  s->meta = p;
  if (!take_buffer(env, opts, "outLen", n * sizeof(int32_t), &p, &s->refs[4])) goto fail;
  s->out_len = p;
  napi_valuetype t;
  if (!prop(env, opts, "onBatch", &v) || napi_typeof(env, v, &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, NULL, "onBatch: a function is required");
    goto fail;
  }
  napi_create_reference(env, v, 1, &s->refs[5]);
  s->rmsg = calloc(n, sizeof *s->rmsg);
  s->smsg = calloc(n, sizeof *s->smsg);
  s->riov = calloc(n, sizeof *s->riov);
  s->siov = calloc(n, sizeof *s->siov);
  s->from = calloc(n, sizeof *s->from);
  if (!s->rmsg || !s->smsg || !s->riov || !s->siov || !s->from) {
    napi_throw_error(env, NULL, "out of memory");
    goto fail;
  }

  char host[64] = {0};
  size_t hl;
  if (!prop(env, opts, "host", &v) || napi_get_value_string_utf8(env, v, host, sizeof host, &hl) != napi_ok) {
    napi_throw_type_error(env, NULL, "host: an IP address is required");
    goto fail;
  }
  struct sockaddr_storage addr;
  socklen_t alen;
  memset(&addr, 0, sizeof addr);
  uint32_t port = prop_u32(env, opts, "port", 0);
  if (port > 65535) {
    napi_throw_range_error(env, NULL, "port: 0..65535");
    goto fail;
  }
  if (ipv6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&addr;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) goto bad_host;
    alen = sizeof *a;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&addr;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) goto bad_host;
    alen = sizeof *a;
  }

  s->fd = socket(s->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s->fd < 0) {
    throw_errno(env, "socket", errno);
    goto fail;
  }
  int one = 1;
  /* as node:dgram with ipv6Only: an IPv6 listener never sees v4-mapped peers */
  if (ipv6 && setsockopt(s->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) goto fail_errno;
  bool reuse = false;
  if (prop(env, opts, "reusePort", &v)) napi_get_value_bool(env, v, &reuse);
  if (reuse && setsockopt(s->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) goto fail_errno;
  int rcv = (int)prop_u32(env, opts, "recvBufferSize", 0), snd = (int)prop_u32(env, opts, "sendBufferSize", 0);
  if (rcv > 0 && setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv) < 0) goto fail_errno;
  if (snd > 0 && setsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof snd) < 0) goto fail_errno;
  if (bind(s->fd, (struct sockaddr *)&addr, alen) < 0) goto fail_errno;
  /* The syscalls exist on this kernel (seccomp or an old kernel would say ENOSYS): nothing is waiting yet */
  if (recvmmsg(s->fd, s->rmsg, 1, MSG_DONTWAIT | MSG_PEEK, NULL) < 0 && errno == ENOSYS) goto fail_errno;

  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || uv_poll_init(loop, &s->poll, s->fd) != 0) {
    napi_throw_error(env, NULL, "uv_poll_init failed");
    goto fail;
  }
  s->poll.data = s;
  napi_value resource, name;
  napi_create_object(env, &resource);
  napi_create_string_utf8(env, "appfence.udpBatch", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, resource, name, &s->async);
  uv_poll_start(&s->poll, UV_READABLE, on_readable);
  s->polling = 1;
  napi_value handle;
  CHECK(napi_create_external(env, s, finalize_external, NULL, &handle));
  return handle;

bad_host:
  napi_throw_type_error(env, "EINVAL", "host: not an IP address of the socket's family");
  goto fail;
fail_errno:
  throw_errno(env, "udp_batch", errno);
fail:
  if (s->fd >= 0) close(s->fd);
  sock_release(s);
  free(s);
  return NULL;
}

static napi_value js_port(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg, out;
  CHECK(napi_get_cb_info(env, info, &argc, &arg, NULL, NULL));
  sock_t *s = unwrap(env, arg);
  if (!s) return NULL;
  struct sockaddr_storage a;
  socklen_t len = sizeof a;
  if (s->closed || getsockname(s->fd, (struct sockaddr *)&a, &len) < 0) return throw_errno(env, "getsockname", s->closed ? EBADF : errno);
  int port = a.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&a)->sin6_port) : ntohs(((struct sockaddr_in *)&a)->sin_port);
  CHECK(napi_create_int32(env, port, &out));
  return out;
}

/* sendTo(handle, data, length, peer) → 0 or -errno. `peer` holds a sockaddr copied from a peers slot. */
static napi_value js_send_to(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], out;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) return napi_throw_type_error(env, NULL, "sendTo(handle, data, length, peer)"), NULL;
  sock_t *s = unwrap(env, argv[0]);
  if (!s) return NULL;
  void *data, *peer;
  size_t dlen, plen;
  uint32_t len;
  if (!bytes_of(env, argv[1], &data, &dlen) || napi_get_value_uint32(env, argv[2], &len) != napi_ok || len > dlen ||
      !bytes_of(env, argv[3], &peer, &plen) || plen < SOCKADDR_SIZE)
    return napi_throw_range_error(env, NULL, "sendTo: length beyond data, or peer shorter than a sockaddr"), NULL;
  struct sockaddr_storage to;
  memset(&to, 0, sizeof to);
  memcpy(&to, peer, SOCKADDR_SIZE);
  int result = 0;
  if (s->closed) {
    result = -EBADF;
  } else if (to.ss_family != s->family) {
    result = -EAFNOSUPPORT;
  } else {
    socklen_t tlen = s->family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    ssize_t r;
    do r = sendto(s->fd, data, len, MSG_DONTWAIT, (struct sockaddr *)&to, tlen);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
      result = -errno;
      s->send_errors++;
      s->last_send_errno = errno;
    }
  }
  CHECK(napi_create_int32(env, result, &out));
  return out;
}

/* pause(handle): stop reading (drain on shutdown); sendTo still works until close. */
static napi_value js_pause(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  CHECK(napi_get_cb_info(env, info, &argc, &arg, NULL, NULL));
  sock_t *s = unwrap(env, arg);
  if (!s) return NULL;
  if (!s->closed && s->polling) uv_poll_stop(&s->poll);
  s->polling = 0;
  return NULL;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  CHECK(napi_get_cb_info(env, info, &argc, &arg, NULL, NULL));
  sock_t *s = unwrap(env, arg);
  if (!s) return NULL;
  s->polling = 0;
  if (s->in_callback) s->close_requested = 1; /* on_readable closes once the batch's replies are out */
  else sock_close(s);
  return NULL;
}

static napi_value js_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg, out, v;
  CHECK(napi_get_cb_info(env, info, &argc, &arg, NULL, NULL));
  sock_t *s = unwrap(env, arg);
  if (!s) return NULL;
  CHECK(napi_create_object(env, &out));
  const char *names[] = {"batches", "datagrams", "truncated", "sendErrors", "recvErrors"};
  double vals[] = {s->batches, s->datagrams, s->truncated, s->send_errors, s->recv_errors};
  for (int i = 0; i < 5; i++) {
    napi_create_double(env, vals[i], &v);
    napi_set_named_property(env, out, names[i], v);
  }
  napi_create_int32(env, s->last_send_errno, &v);
  napi_set_named_property(env, out, "lastSendErrno", v);
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"port", NULL, js_port, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendTo", NULL, js_send_to, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pause", NULL, js_pause, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stats", NULL, js_stats, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_value v;
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_create_uint32(env, PEER_SIZE, &v);
  napi_set_named_property(env, exports, "PEER_SIZE", v);
  napi_create_uint32(env, PEER_TEXT_AT, &v);
  napi_set_named_property(env, exports, "PEER_TEXT_AT", v);
  napi_create_uint32(env, SOCKADDR_SIZE, &v);
  napi_set_named_property(env, exports, "SOCKADDR_SIZE", v);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
