// Many battles in one process, driven over stdin/stdout: the simulator without a server.
// argv[2]: the installed pokemon-showdown package folder; argv[3..]: formats whose data to load
// at once (Python builds its players and loads its policy meanwhile; loaded on the first battle
// instead, the data costs ~0.5 s while Python waits). A format that fails to load is reported
// on stderr, and again by each battle that asks for it.
//
// stdin, one JSON object per line:
//   {"t":"start","id":TAG,"format":"gen1ou","seed":"sodium,<32 hex>","p1":[NAME,TEAM],"p2":[NAME,TEAM]}
//   {"t":"choose","id":TAG,"side":"p1","choice":"move 1"}
//   {"t":"forfeit","id":TAG,"side":"p1"}
//   {"t":"close","id":TAG}                                       (forget a finished battle)
//   {"t":"search","id":TAG,"side":"p1","forks":8,"depth":3,"epsilon":0.1,"seed":"sodium,…",
//    "choices":["move 1",…]|null}   (value the side's legal choices now: see search.js)
// stdout, one JSON array per line:
//   [TAG, "p1"|"p2", TEXT]   what that player's websocket would receive in the battle room
//   [TAG, "end", WINNER]     the battle is over ("" for a tie)
//   [TAG, "error", MESSAGE]  the battle cannot go on (an illegal team, a simulator crash)
//   [TAG, "search:p1", {"choices": [...], "values": [...], "stderrs": [...], "samples": [...],
//                       "forks": K}]
//                            a search's answer
//
// Like the server: teams are validated and normalised by the TeamValidator (a Gen 1 set would
// otherwise keep an ability), only each player's own channel of `|split|` lines reaches it, and
// every request carries an `rqid` counted per battle. The process exits when stdin closes, so
// it never outlives the Python process that owns it.
'use strict';
const path = require('path');
const readline = require('readline');

const pkg = process.argv[2];
const {Teams, TeamValidator} = require(pkg);
const {Battle, extractChannelMessages} = require(path.join(pkg, 'dist', 'sim', 'battle'));

const search = require('./search.js').makeSearch(pkg);

for (const format of process.argv.slice(3)) {
  try {
    TeamValidator.get(format).dex.includeData();
  } catch (err) {
    process.stderr.write(`could not load the data of format ${format}: ${err}\n`);
  }
}

const battles = new Map();  // tag -> {battle, rqid, started: {p1, p2}}
const teams = new Map();    // format + packed team -> normalised packed team, or Error
let out = [];
// Rows go out when a burst of input is done, or every FLUSH_ROWS rows within one: Python can
// start on the first battles' turns while this process plays the rest (measured: +9% decisions/s
// in tiny-policy self-play at concurrency 32; 4 rows is too few, 32 too many).
const FLUSH_ROWS = 16;

function emit(row) {
  out.push(JSON.stringify(row));
  if (out.length === 1) setImmediate(flush);
}

function flush() {
  if (!out.length) return;
  const text = out.join('\n') + '\n';
  out = [];
  process.stdout.write(text);
}

function normalisedTeam(format, packed) {
  const key = format + '\n' + packed;
  if (!teams.has(key)) {
    const team = Teams.unpack(packed);
    let value;
    if (!team || !team.length) {
      value = new Error('could not parse the team');
    } else {
      const problems = TeamValidator.get(format).validateTeam(team);
      value = problems && problems.length ? new Error(problems.join('; ')) : Teams.pack(team);
    }
    teams.set(key, value);
  }
  const value = teams.get(key);
  if (value instanceof Error) throw value;
  return value;
}

function start(msg) {
  const tag = msg.id;
  if (battles.has(tag)) throw new Error(`battle ${tag} already exists (tags are never reused)`);
  const p1Team = normalisedTeam(msg.format, msg.p1[1]);
  const p2Team = normalisedTeam(msg.format, msg.p2[1]);
  const state = {battle: null, rqid: 0, started: {p1: false, p2: false}};
  battles.set(tag, state);
  const title = `|init|battle\n|title|${msg.p1[0]} vs. ${msg.p2[0]}\n`;
  const send = (type, data) => {
    if (type === 'update') {
      const channels = extractChannelMessages(Array.isArray(data) ? data.join('\n') : data, [1, 2]);
      for (const [side, id] of [['p1', 1], ['p2', 2]]) {
        let text = channels[id].join('\n');
        if (!state.started[side]) {
          state.started[side] = true;
          text = title + text;
        }
        emit([tag, side, text]);
      }
    } else if (type === 'sideupdate') {
      const nl = data.indexOf('\n');
      const side = data.slice(0, nl);
      let text = data.slice(nl + 1);
      if (text.startsWith('|request|{')) {  // the server numbers requests; the sim does not
        // (spliced into the JSON text: parsing and printing a request costs more than its battle turn)
        text = text.slice(0, -1) + `,"rqid":${++state.rqid}}`;
      }
      emit([tag, side, text]);
    } else if (type === 'end') {
      const log = JSON.parse(Array.isArray(data) ? data.join('\n') : data);
      emit([tag, 'end', log.winner || '']);
    }
  };
  state.battle = new Battle({formatid: msg.format, seed: msg.seed, send});
  state.battle.setPlayer('p1', {name: msg.p1[0], team: p1Team});
  state.battle.setPlayer('p2', {name: msg.p2[0], team: p2Team});
  state.battle.sendUpdates();
}

function handle(msg) {
  if (msg.t === 'start') return start(msg);
  const state = battles.get(msg.id);
  if (msg.t === 'close') {
    battles.delete(msg.id);
    return;
  }
  if (msg.t === 'search') {  // answered even for a finished battle: somebody awaits it
    const live = state && !state.battle.ended;
    const none = {choices: [], values: [], stderrs: [], samples: [], forks: 0};
    emit([msg.id, `search:${msg.side}`, live ? search(state.battle, msg.side, msg) : none]);
    return;  // the real battle is untouched: nothing to send
  }
  if (!state || state.battle.ended) return;  // a late choice for a finished battle
  if (msg.t === 'choose') {
    state.battle.choose(msg.side, msg.choice);
  } else if (msg.t === 'forfeit') {
    state.battle.lose(msg.side);
  } else {
    throw new Error(`unknown command ${JSON.stringify(msg.t)}`);
  }
  state.battle.sendUpdates();
}

const rl = readline.createInterface({input: process.stdin, crlfDelay: Infinity});
rl.on('line', (line) => {
  if (!line) return;
  let msg;
  try {
    msg = JSON.parse(line);
    handle(msg);
  } catch (err) {
    const tag = msg && msg.id ? msg.id : '';
    if (tag && msg.t !== 'start') battles.delete(tag);
    emit([tag, 'error', String(err && err.stack || err)]);
  }
  if (out.length >= FLUSH_ROWS) flush();
});
rl.on('close', () => {
  flush();
  process.exit(0);
});
