// Validate teams with Pokemon Showdown's own TeamValidator, many teams in one process.
// stdin:  {"format": "gen1ou", "teams": ["<packed or exported team>", ...]}
// stdout: [["problem", ...], ...], one list per team; an empty list means the team is legal.
'use strict';
// argv[2]: the installed pokemon-showdown package folder.
const {Teams, TeamValidator} = require(process.argv[2]);

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const {format, teams} = JSON.parse(input);
  const validator = TeamValidator.get(format);
  const results = teams.map((text) => {
    let team;
    try {
      team = Teams.import(text);
    } catch (err) {
      return [`could not parse the team: ${err.message}`];
    }
    if (!team || !team.length) return ['could not parse the team'];
    return validator.validateTeam(team) || [];
  });
  process.stdout.write(JSON.stringify(results));
});
