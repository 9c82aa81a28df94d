// The simulator alone: random vs random battles in this Node process (Showdown's own
// BattleStream and RandomPlayerAI, no Python, no server). Prints one JSON line.
// argv: PACKAGE_DIR TEAMS_JSON BATTLES [CONCURRENCY] [CHOICES]   (TEAMS_JSON: packed teams)
// CHOICES: `uniform` (default) picks uniformly among the legal moves and switches, as the random
// player of metamon-sp (poke-env's) does, so both play the same game; `showdown` is
// RandomPlayerAI as it comes, which switches only when it cannot move: its battles are shorter
// (~110 decisions against ~144) and cost the simulator more a decision (attacks, not switches).
'use strict';
const fs = require('fs');
const path = require('path');

const [pkg, teamsFile, battlesArg, concurrencyArg, choicesArg] = process.argv.slice(2);
const {BattleStream, getPlayerStreams} = require(path.join(pkg, 'dist', 'sim', 'battle-stream'));
const {RandomPlayerAI} = require(path.join(pkg, 'dist', 'sim', 'tools', 'random-player-ai'));
const {Teams, TeamValidator} = require(pkg);

const validator = TeamValidator.get('gen1ou');
const teams = JSON.parse(fs.readFileSync(teamsFile, 'utf8')).map((packed) => {
  const team = Teams.unpack(packed);
  validator.validateTeam(team);  // normalises Gen 1 sets, as the server and battle_pool.js do
  return Teams.pack(team);
});
const battles = parseInt(battlesArg, 10);
const concurrency = parseInt(concurrencyArg || '10', 10);
const choices = choicesArg || 'uniform';
if (!['uniform', 'showdown'].includes(choices)) {
  throw new Error(`CHOICES must be uniform or showdown, not ${JSON.stringify(choices)}`);
}
let decisions = 0;

class CountingAI extends RandomPlayerAI {
  receiveRequest(request) {
    const moving = request.active && !request.forceSwitch && !request.wait;
    const active = moving ? request.active[0] : null;
    if (active && choices === 'uniform') {  // RandomPlayerAI switches when random() > this.move
      const moves = active.moves.filter((m) => !m.disabled).length;
      const switches = active.trapped ? 0 : request.side.pokemon.filter(
        (p) => !p.active && !p.condition.endsWith(' fnt')).length;
      this.move = moves + switches ? moves / (moves + switches) : 1;
    }
    super.receiveRequest(request);
  }

  choose(choice) {
    decisions++;
    super.choose(choice);
  }
}

async function one(i) {
  const streams = getPlayerStreams(new BattleStream());
  const p1 = new CountingAI(streams.p1);
  const p2 = new CountingAI(streams.p2);
  void p1.start();
  void p2.start();
  const spectate = (async () => { for await (const _ of streams.omniscient) { /* drain */ } })();
  const pick = (k) => teams[(i * 7 + k) % teams.length];
  void streams.omniscient.write(`>start {"formatid":"gen1ou","seed":"sodium,${(i + 1).toString(16).padStart(32, '0')}"}
>player p1 {"name":"p1","team":"${pick(0)}"}
>player p2 {"name":"p2","team":"${pick(3)}"}`);
  await spectate;
}

(async () => {
  const t0 = process.hrtime.bigint();
  let next = 0;
  const lane = async () => { while (next < battles) await one(next++); };
  await Promise.all(Array.from({length: concurrency}, lane));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stdout.write(JSON.stringify({battles, decisions, seconds,
    decisions_per_s: decisions / seconds, battles_per_s: battles / seconds,
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024}) + '\n');
})();
