// What search would cost: forking a Gen 1 battle mid-game in Showdown's simulator
// (Battle.toJSON / Battle.fromJSON) and playing it out. Prints one JSON line.
// argv: PACKAGE_DIR TEAMS_JSON BATTLES FORKS   (TEAMS_JSON: a file with packed teams)
// For each of BATTLES seeded random-vs-random battles, at turns 5, 10 and 20 (while it lasts):
// serialize, deserialize FORKS times, play each fork 1 turn, 3 turns and to the end with random
// choices under a fresh seed; and check that a fork given the original's PRNG state and the
// same choices replays the original battle exactly (`faithful`).
'use strict';
const fs = require('fs');
const path = require('path');

const [pkg, teamsFile, battlesArg, forksArg] = process.argv.slice(2);
const {Battle} = require(path.join(pkg, 'dist', 'sim', 'battle'));
const {PRNG} = require(path.join(pkg, 'dist', 'sim', 'prng'));
const {Teams, TeamValidator} = require(pkg);

const validator = TeamValidator.get('gen1ou');
const teams = JSON.parse(fs.readFileSync(teamsFile, 'utf8')).map((packed) => {
  const team = Teams.unpack(packed);
  validator.validateTeam(team);  // normalises Gen 1 sets, as battle_pool.js does
  return team;
});
const battles = parseInt(battlesArg, 10);
const forks = parseInt(forksArg, 10);
const FORK_TURNS = [5, 10, 20];

function choice(side, rng) {
  const req = side.activeRequest;
  if (!req || req.wait) return null;
  if (req.forceSwitch) {
    const opts = req.side.pokemon.map((p, i) => i).filter(
      (i) => !req.side.pokemon[i].active && !req.side.pokemon[i].condition.endsWith(' fnt'));
    return opts.length ? `switch ${rng.sample(opts) + 1}` : 'pass';
  }
  const moves = req.active[0].moves.map((m, i) => i).filter((i) => !req.active[0].moves[i].disabled);
  return moves.length ? `move ${rng.sample(moves) + 1}` : 'default';
}

function play(battle, rng, untilTurn) {  // random choices for both sides until the turn or the end
  let guard = 0;
  while (!battle.ended && battle.turn < untilTurn && guard++ < 5000) {
    for (const side of battle.sides) {
      const c = choice(side, rng);
      if (c && !battle.choose(side.id, c)) battle.choose(side.id, 'default');
    }
  }
}

const ms = () => Number(process.hrtime.bigint()) / 1e6;
const acc = {serialize: 0, deserialize: 0, turn1: 0, turn3: 0, end: 0, bytes: 0, n: 0,
  endTurns: 0, faithful: 0, checked: 0};
for (let i = 0; i < battles; i++) {
  const seed = `sodium,${(i + 1).toString(16).padStart(32, '0')}`;
  const b = new Battle({formatid: 'gen1ou', seed});
  b.setPlayer('p1', {name: 'p1', team: teams[i % teams.length]});
  b.setPlayer('p2', {name: 'p2', team: teams[(i * 7 + 3) % teams.length]});
  const rng = new PRNG(`sodium,${(i + 1000).toString(16).padStart(32, '0')}`);
  for (const turn of FORK_TURNS) {
    play(b, rng, turn);
    if (b.ended) break;
    let t = ms();
    const json = JSON.stringify(b.toJSON());
    acc.serialize += ms() - t;
    acc.bytes += json.length;
    // faithful: the same PRNG state and the same choices give the same battle log
    const twin = Battle.fromJSON(json);
    const mark = b.log.length;
    const markTwin = twin.log.length;
    play(b, new PRNG(`sodium,${(i + 2000).toString(16).padStart(32, '0')}`), turn + 3);
    play(twin, new PRNG(`sodium,${(i + 2000).toString(16).padStart(32, '0')}`), turn + 3);
    acc.checked++;
    const after = (log, from) => log.slice(from).filter((l) => !l.startsWith('|t:|'));  // wall clock
    if (after(b.log, mark).join('\n') === after(twin.log, markTwin).join('\n')) acc.faithful++;
    for (let f = 0; f < forks; f++) {
      const frng = new PRNG(`sodium,${(i * 1000 + f + 1).toString(16).padStart(32, '0')}`);
      for (const [key, depth] of [['turn1', 1], ['turn3', 3], ['end', Infinity]]) {
        t = ms();
        const fork = Battle.fromJSON(json);
        const t1 = ms();
        acc.deserialize += t1 - t;
        fork.resetRNG(frng.getSeed());  // the future the fork sees is its own
        play(fork, frng, fork.turn + depth);
        acc[key] += ms() - t1;
        if (key === 'end') acc.endTurns += fork.turn - turn;
      }
      acc.n++;
    }
  }
}
const k = acc.n;
process.stdout.write(JSON.stringify({
  battles, forks_per_state: forks, states: acc.checked, forks: k,
  state_kb: +(acc.bytes / acc.checked / 1024).toFixed(1),
  serialize_ms: +(acc.serialize / acc.checked).toFixed(3),
  deserialize_ms: +(acc.deserialize / (3 * k)).toFixed(3),
  rollout_1_turn_ms: +(acc.turn1 / k).toFixed(3),
  rollout_3_turns_ms: +(acc.turn3 / k).toFixed(3),
  rollout_to_end_ms: +(acc.end / k).toFixed(3),
  rollout_to_end_turns: +(acc.endTurns / k).toFixed(1),
  faithful: `${acc.faithful}/${acc.checked}`,
}) + '\n');
