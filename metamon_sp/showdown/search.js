// One-step search in the simulator: the value of each of a side's legal choices, estimated by
// forking the battle (Battle.toJSON / fromJSON) and playing short rollouts from each fork.
//
// By default the fork sees both teams whole, so this is a determinized search (perfect-
// information rollouts, as in PIMC for card games): fit to make training targets or to measure
// how much a policy leaves on the table, not to play fair games. Given a pool of sets, each
// fork first redraws the foe's unseen Pokémon from it (`determinize`): the search then knows
// only what the searching side has seen, plus the true moves of the foe's seen Pokémon.
// Every fork draws its own future (a fresh PRNG seed), and the opponent's choice already made
// in the real battle is discarded in the fork, so a search never sees the real battle's dice
// or the opponent's committed move.
//
//   search(battle, 'p1', {forks: 8, depth: 3, seed: 'sodium,…', epsilon: 0.1, choices: null})
//     -> {choices: ['move 1', 'switch 3', …], values: [0.61, 0.47, …], stderrs: [0.03, …],
//         samples: [[per-fork values of move 1], …], forks: 8}
//   (`choices`, when given, restricts the search to those of the legal choices; with
//   `pool_id`, `pool` (packed teams) and `seen` (the species ids the side has seen of its foe),
//   each fork first replaces the foe's unseen Pokémon by sets drawn from the pool)
//
// Rollouts play both sides with `heuristicChoice`: the move with the highest base power ×
// STAB × type effectiveness against the foe (status moves a low fixed score), the bench
// Pokémon with the best such move when a switch is forced, and a uniform legal choice with
// probability `epsilon`. A rollout stops at the end of the battle (1 won, 0 lost, 0.5 tie) or
// after `depth` turns, where `material` scores what is left.
'use strict';
const path = require('path');

function load(pkg) {
  const {Battle} = require(path.join(pkg, 'dist', 'sim', 'battle'));
  const {PRNG} = require(path.join(pkg, 'dist', 'sim', 'prng'));
  const {Pokemon} = require(path.join(pkg, 'dist', 'sim', 'pokemon'));
  const {Teams, TeamValidator} = require(pkg);
  return {Battle, PRNG, Pokemon, Teams, TeamValidator};
}

// A pool of sets to draw the opponent's unseen Pokémon from: packed teams (a training split),
// validated and normalised as battle_pool.js does its teams, once per pool name.
const pools = new Map();

function poolSets(sim, battle, id, packedTeams) {
  if (!pools.has(id)) {
    const validator = sim.TeamValidator.get(battle.format.id);
    const sets = [];
    for (const packed of packedTeams || []) {
      const team = sim.Teams.unpack(packed);
      if (team && !validator.validateTeam(team)) sets.push(...team);
    }
    if (!sets.length) throw new Error(`search pool ${id}: no valid set`);
    pools.set(id, sets);
  }
  return pools.get(id);
}

// An information-set determinization: the foe's Pokémon that `seen` does not name (never sent
// out, so still untouched: Gen 1 has no team preview and no hazards) become sets drawn from
// `sets`, never a species the foe shows already. What the searching side could not know is
// then no longer what the rollouts play against. (A seen Pokémon's unrevealed moves stay.)
function determinize(sim, foe, seen, sets, rng) {
  const present = new Set(foe.pokemon.filter((p) => seen.has(p.species.id))
    .map((p) => p.species.id));
  for (let i = 0; i < foe.pokemon.length; i++) {
    const old = foe.pokemon[i];
    if (seen.has(old.species.id) || old.isActive || old.hp < old.maxhp) continue;
    const options = sets.filter((set) => !present.has(foe.battle.dex.species.get(set.species).id));
    if (!options.length) continue;
    const mon = new sim.Pokemon(rng.sample(options), foe);
    mon.position = i;
    foe.pokemon[i] = mon;
    present.add(mon.species.id);
  }
}

// What a status leaves of a Pokémon's worth (Gen 1: a frozen one never thaws on its own).
const STATUS_WORTH = {frz: 0.1, slp: 0.45, par: 0.7, tox: 0.8, psn: 0.85, brn: 0.8};

function material(side) {
  let worth = 0;
  for (const p of side.pokemon) {
    if (p.fainted || !p.hp) continue;
    worth += (p.hp / p.maxhp) * (STATUS_WORTH[p.status] ?? 1);
  }
  return worth;
}

function leafValue(battle, sideIdx) {
  if (battle.ended) {
    if (!battle.winner) return 0.5;
    return battle.winner === battle.sides[sideIdx].name ? 1 : 0;
  }
  const n = battle.sides[sideIdx].pokemon.length;
  const diff = material(battle.sides[sideIdx]) - material(battle.sides[1 - sideIdx]);
  return 0.5 + 0.5 * diff / n;
}

function moveScore(dex, user, moveId, foe) {
  const move = dex.moves.get(moveId);
  if (!foe || foe.fainted) return 1;
  let power = move.basePower;
  if (move.damage === 'level' || typeof move.damage === 'number') power = 70;
  if (move.ohko) power = 50;
  if (!power) return move.category === 'Status' ? 5 : 1;
  if (!dex.getImmunity(move.type, foe)) return 0;
  power *= 2 ** dex.getEffectiveness(move.type, foe);
  if (user.hasType(move.type)) power *= 1.5;
  if (move.selfdestruct) power *= 0.3;
  if (move.flags && move.flags.recharge) power *= 0.7;
  return power;
}

// The legal choices of a side's current request, as the simulator names them.
function legalChoices(side) {
  const req = side.activeRequest;
  if (!req || req.wait) return [];
  const bench = req.side.pokemon.map((p, i) => i).filter(
    (i) => !req.side.pokemon[i].active && !req.side.pokemon[i].condition.endsWith(' fnt'));
  if (req.forceSwitch) return bench.map((i) => `switch ${i + 1}`);
  const active = req.active[0];
  const out = [];
  active.moves.forEach((m, i) => { if (!m.disabled) out.push(`move ${i + 1}`); });
  if (!out.length) out.push('move 1');  // Struggle, or a locked move
  if (!active.trapped) for (const i of bench) out.push(`switch ${i + 1}`);
  return out;
}

function heuristicChoice(battle, side, rng, epsilon) {
  const choices = legalChoices(side);
  if (!choices.length) return null;
  if (rng.random() < epsilon) return rng.sample(choices);
  const foe = side.foe.active[0];
  const dex = battle.dex;
  let best = null;
  let bestScore = -1;
  for (const c of choices) {
    let score;
    const slot = Number(c.split(' ')[1]) - 1;
    if (c.startsWith('move')) {
      const user = side.active[0];
      const moves = side.activeRequest.active[0].moves;
      score = moves[slot] ? moveScore(dex, user, moves[slot].id, foe) : 1;
    } else {
      if (!side.activeRequest.forceSwitch) continue;  // rollouts switch only when they must
      const mon = side.pokemon[slot];
      score = Math.max(1, ...mon.moveSlots.map((m) => moveScore(dex, mon, m.id, foe)));
    }
    score += rng.random() * 1e-3;  // ties broken at random
    if (score > bestScore) {
      best = c;
      bestScore = score;
    }
  }
  return best || rng.sample(choices);
}

function choose(battle, side, choice) {
  if (choice && !battle.choose(side.id, choice)) battle.choose(side.id, 'default');
}

function rollout(battle, sideIdx, rng, depth, epsilon) {
  const stop = battle.turn + depth;
  let guard = 0;
  while (!battle.ended && battle.turn < stop && guard++ < 500) {
    for (const side of battle.sides) {
      if (side.isChoiceDone()) continue;
      choose(battle, side, heuristicChoice(battle, side, rng, epsilon));
    }
  }
  return leafValue(battle, sideIdx);
}

function forkSeed(rng) {
  let hex = '';
  for (let i = 0; i < 8; i++) hex += rng.random(0x10000).toString(16).padStart(4, '0');
  return `sodium,${hex}`;
}

function makeSearch(pkg) {
  const sim = load(pkg);
  const {Battle, PRNG} = sim;
  return function search(battle, sideId, opts) {
    const forks = opts.forks || 8;
    const depth = opts.depth || 3;
    const epsilon = opts.epsilon ?? 0.1;
    const rng = new PRNG(opts.seed);
    const sideIdx = sideId === 'p1' ? 0 : 1;
    let choices = legalChoices(battle.sides[sideIdx]);
    if (opts.choices) choices = choices.filter((c) => opts.choices.includes(c));
    const state = JSON.stringify(battle.toJSON());
    const sets = opts.pool_id ? poolSets(sim, battle, opts.pool_id, opts.pool) : null;
    const seen = new Set(opts.seen || []);
    // Common random numbers: fork f of every choice draws the same future (simulator dice and
    // rollout decisions), so two choices' values differ by the choice, not by the dice, and
    // their per-fork differences (`samples`) tell them apart with far fewer forks.
    const futures = Array.from({length: forks}, () => [forkSeed(rng), forkSeed(rng)]);
    const values = [];
    const stderrs = [];
    const samples = [];
    const counted = [];
    for (const choice of choices) {
      const vs = [];
      for (const [simSeed, playSeed] of futures) {
        const fork = Battle.fromJSON(state);
        fork.prng = new PRNG(simSeed);  // the fork's own future
        const play = new PRNG(playSeed);
        const me = fork.sides[sideIdx];
        const foe = fork.sides[1 - sideIdx];
        if (sets) determinize(sim, foe, seen, sets, play);
        const foeChoice = heuristicChoice(fork, foe, play, epsilon);
        if (foeChoice) foe.clearChoice();  // not the move the opponent committed for real
        if (!fork.choose(me.id, choice)) break;  // not legal after all
        choose(fork, foe, foeChoice);
        vs.push(rollout(fork, sideIdx, play, depth, epsilon));
      }
      const n = vs.length;
      if (n) {
        const mean = vs.reduce((a, b) => a + b, 0) / n;
        const sq = vs.reduce((a, b) => a + (b - mean) ** 2, 0);
        values.push(mean);
        // the standard error of that mean (for two choices, compare their paired `samples`)
        stderrs.push(n > 1 ? Math.sqrt(sq / (n - 1) / n) : 1);
        samples.push(vs);
        counted.push(choice);
      }
    }
    return {choices: counted, values, stderrs, samples, forks};
  };
}

module.exports = {makeSearch, load, poolSets, determinize};
