// Start the Showdown server in this process, and exit when the process that started us is gone.
// The parent holds our stdin open as a pipe: when it dies (however: SIGKILL, OOM, a lost
// worker) the kernel closes its end and we read EOF. No orphan server outlives its owner.
// argv[2]: the pokemon-showdown package folder; argv[3..]: the arguments of `pokemon-showdown`.
'use strict';
const path = require('path');

const pkg = process.argv[2];
const args = process.argv.slice(3);
const die = () => process.exit(0);
process.stdin.on('end', die);
process.stdin.on('close', die);
process.stdin.on('error', die);
process.stdin.resume();

process.chdir(pkg);
process.argv = [process.argv[0], path.join(pkg, 'pokemon-showdown'), ...args];
require(path.join(pkg, 'pokemon-showdown'));
