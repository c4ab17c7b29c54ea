//! Rule-based match formation for modes with `[mode.matchmaking]`: a rating window that
//! widens with the wait, a region with a fallback, properties that must match exactly. Pure
//! (no IO, no clock): the in-memory directory runs it under its lock, and the Redis directory
//! runs it on a snapshot of the queue and claims each group atomically in Lua, so both form the
//! same matches from the same queue.
//!
//! Unmatched tickets take turns, oldest first, to anchor a match: it plays in the anchor's
//! region, and takes the players closest to the anchor's rating among those the rules allow,
//! oldest first on a tie. A player is allowed when
//! - its exact properties equal the anchor's;
//! - its region is the anchor's, or it waited `region_fallback_s` and the anchor's region is
//!   its best-latency region besides its own (`latency.<region>`, lowest wins);
//! - its rating lies within the anchor's window, and the anchor's within its own window.
//!
//! A full match forms at once; an anchor that waited the mode's `matchmaking_wait_s` starts
//! with what it has if that reaches `min_players`.

use std::collections::HashMap;

use tickroom_game::modes::{MatchRules, LATENCY_PREFIX};
use tickroom_game::PlayerMetadata;
pub use tickroom_protocol::api::Grouping;

/// One queued ticket as the matcher sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// When it was queued, unix ms (older anchors first).
    pub enqueued_ms: u64,
    /// A stable tie-breaker (the ticket id).
    pub tie: u128,
    /// The ticket's properties (a party's tickets all carry its leader's).
    pub properties: &'a PlayerMetadata,
    /// The party the ticket was queued with: a party is matched as one unit, whole or not at
    /// all, and on one team.
    pub party: Option<u128>,
    /// The ticket's player (for the teams of the grouping).
    pub player_id: u64,
}

/// How big a match is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// A full match.
    pub players: usize,
    /// The fewest a match may start with once its anchor waited `wait_ms`.
    pub min_players: usize,
    /// See `min_players`, in ms.
    pub wait_ms: u64,
    /// Teams a match is split into (1: none); a party stays on one team.
    pub teams: usize,
}

/// A match the rules allow: who, and why they were grouped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Indexes into the candidates, the anchor first.
    pub members: Vec<usize>,
    /// Why: the anchor's rating window and the region the match plays in.
    pub grouping: Grouping,
}

/// Backfill: the queue's units (solo tickets, whole parties), oldest first, into rooms with
/// `free` seats each, first fit. Returns, per room index, the candidates it takes.
pub fn backfill(candidates: &[Candidate<'_>], free: &[usize]) -> Vec<(usize, Vec<usize>)> {
    let mut units: Vec<Vec<usize>> = Vec::new();
    let mut party_unit: HashMap<u128, usize> = HashMap::new();
    for (i, c) in candidates.iter().enumerate() {
        match c.party.and_then(|p| party_unit.get(&p).copied()) {
            Some(u) => units[u].push(i),
            None => {
                if let Some(p) = c.party {
                    party_unit.insert(p, units.len());
                }
                units.push(vec![i]);
            }
        }
    }
    units.sort_by_key(|u| (candidates[u[0]].enqueued_ms, candidates[u[0]].tie));
    let mut left = free.to_vec();
    let mut fills: Vec<Vec<usize>> = vec![Vec::new(); free.len()];
    for unit in units {
        if let Some(room) = left.iter().position(|f| *f >= unit.len()) {
            left[room] -= unit.len();
            fills[room].extend(unit);
        }
        if left.iter().all(|f| *f == 0) {
            break;
        }
    }
    fills
        .into_iter()
        .enumerate()
        .filter(|(_, f)| !f.is_empty())
        .collect()
}

impl Group {
    /// What its players are told about why they were grouped: nothing in a first-come mode
    /// without teams.
    pub fn told(&self) -> Option<Grouping> {
        (self.grouping != Grouping::default()).then(|| self.grouping.clone())
    }
}

/// Why a ticket's properties do not fit its mode (the gateway answers 400 with it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertyError {
    /// A property the mode's rules do not name.
    #[error("property `{0}` is not one this mode matches on")]
    Unknown(String),
    /// A property the rules need is absent.
    #[error("property `{0}` is required by this mode")]
    Missing(String),
    /// A property has the wrong kind (a number where text is needed, or the reverse).
    #[error("property `{0}` must be {1}")]
    Kind(String, &'static str),
}

/// Checks a ticket's properties against its mode's rules (`None`: the mode takes none).
pub fn check_properties(
    rules: Option<&MatchRules>,
    properties: &PlayerMetadata,
) -> Result<(), PropertyError> {
    for key in properties.0.keys() {
        if !rules.is_some_and(|r| r.knows(key)) {
            return Err(PropertyError::Unknown(key.clone()));
        }
    }
    let Some(rules) = rules else {
        return Ok(());
    };
    let need = |key: &String, number: bool| match properties.0.get(key) {
        None => Err(PropertyError::Missing(key.clone())),
        Some(tickroom_game::MetaValue::Int(_)) if !number => {
            Err(PropertyError::Kind(key.clone(), "text"))
        }
        Some(tickroom_game::MetaValue::Str(_)) if number => {
            Err(PropertyError::Kind(key.clone(), "a whole number"))
        }
        Some(_) => Ok(()),
    };
    if let Some(rating) = &rules.rating {
        need(rating, true)?;
    }
    if let Some(region) = &rules.region {
        need(region, false)?;
    }
    for key in &rules.exact {
        need(key, false)?;
    }
    for key in properties
        .0
        .keys()
        .filter(|k| k.starts_with(LATENCY_PREFIX))
    {
        need(key, true)?;
    }
    Ok(())
}

/// What the matcher derives from one candidate once per pass.
struct Prepared<'a> {
    waited_ms: u64,
    rating: i64,
    window: u32,
    exact: Vec<&'a str>,
    region: &'a str,
    /// The best-latency region besides its own, if it reported any.
    fallback: Option<&'a str>,
}

impl<'a> Prepared<'a> {
    fn new(c: &Candidate<'a>, rules: &MatchRules, now_ms: u64) -> Prepared<'a> {
        let p = c.properties;
        let waited_ms = now_ms.saturating_sub(c.enqueued_ms);
        let region = rules.region.as_deref().and_then(|k| p.str(k)).unwrap_or("");
        let fallback = p
            .0
            .iter()
            .filter_map(|(k, v)| match v {
                tickroom_game::MetaValue::Int(ms) => Some((k.strip_prefix(LATENCY_PREFIX)?, *ms)),
                tickroom_game::MetaValue::Str(_) => None,
            })
            .filter(|(r, _)| *r != region)
            .min_by_key(|(r, ms)| (*ms, *r))
            .map(|(r, _)| r);
        Prepared {
            waited_ms,
            rating: rules.rating.as_deref().and_then(|k| p.int(k)).unwrap_or(0),
            window: rules.window_after(waited_ms),
            exact: rules.exact.iter().map(|k| p.str(k).unwrap_or("")).collect(),
            region,
            fallback,
        }
    }
}

/// First-fit of `size` into the team with the most room; `false` when no team has room.
fn seat(teams: &mut [usize], cap: usize, size: usize) -> Option<usize> {
    let (team, used) = teams
        .iter()
        .enumerate()
        .min_by_key(|(i, used)| (**used, *i))?;
    (used + size <= cap).then(|| {
        teams[team] += size;
        team
    })
}

/// Forms at most `max_matches` matches from `candidates` under `rules` at `now_ms`. With no
/// rating rule this is first come, first served (units in queue order).
pub fn form(
    candidates: &[Candidate<'_>],
    rules: &MatchRules,
    shape: Shape,
    now_ms: u64,
    max_matches: usize,
) -> Vec<Group> {
    let wanted = shape.players.max(1);
    let team_count = shape.teams.clamp(1, wanted);
    let team_cap = wanted / team_count;
    // Units: a solo ticket, or every ticket of one party (in candidate order).
    let mut units: Vec<Vec<usize>> = Vec::new();
    let mut party_unit: HashMap<u128, usize> = HashMap::new();
    for (i, c) in candidates.iter().enumerate() {
        match c.party {
            Some(p) => match party_unit.get(&p) {
                Some(&u) => units[u].push(i),
                None => {
                    party_unit.insert(p, units.len());
                    units.push(vec![i]);
                }
            },
            None => units.push(vec![i]),
        }
    }
    let prepared: Vec<Prepared<'_>> = units
        .iter()
        .map(|u| Prepared::new(&candidates[u[0]], rules, now_ms))
        .collect();
    let key = |u: usize| {
        let c = &candidates[units[u][0]];
        (c.enqueued_ms, c.tie)
    };
    let fallback_ms = u64::from(rules.region_fallback_s) * 1000;
    // Buckets of units with equal exact properties and region, by rating then age.
    let mut buckets: HashMap<(&[&str], &str), Vec<usize>> = HashMap::new();
    for (u, p) in prepared.iter().enumerate() {
        buckets
            .entry((p.exact.as_slice(), p.region))
            .or_default()
            .push(u);
    }
    for bucket in buckets.values_mut() {
        bucket.sort_by_key(|&u| (prepared[u].rating, key(u)));
    }
    // Without a rating every unit of a bucket is as good as another: the oldest first, from
    // a cursor past the taken ones, so a pass stays linear in the queue.
    let mut cursors: HashMap<(&[&str], &str), usize> = HashMap::new();
    let mut by_age: Vec<usize> = (0..units.len()).collect();
    by_age.sort_by_key(|&u| key(u));

    let mut taken = vec![false; units.len()];
    let mut groups = Vec::new();
    let mut picks: Vec<(u64, u64, u128, usize)> = Vec::new();
    for &anchor in &by_age {
        if groups.len() >= max_matches {
            break;
        }
        let size = units[anchor].len();
        if taken[anchor] || size > team_cap {
            continue;
        }
        let a = &prepared[anchor];
        let (low, high) = if rules.rating.is_some() {
            (
                a.rating.saturating_sub(i64::from(a.window)),
                a.rating.saturating_add(i64::from(a.window)),
            )
        } else {
            (i64::MIN, i64::MAX)
        };
        picks.clear();
        for (&bucket_key, bucket) in &buckets {
            let (exact, region) = bucket_key;
            if exact != a.exact.as_slice() {
                continue;
            }
            let home = region == a.region;
            if !home && (rules.region.is_none() || a.waited_ms < fallback_ms) {
                continue;
            }
            let start = if rules.rating.is_some() {
                bucket.partition_point(|&u| prepared[u].rating < low)
            } else {
                let cursor = cursors.entry(bucket_key).or_insert(0);
                while bucket.get(*cursor).is_some_and(|&u| taken[u]) {
                    *cursor += 1;
                }
                *cursor
            };
            let mut seats = 0;
            for &u in bucket[start..]
                .iter()
                .take_while(|&&u| prepared[u].rating <= high)
            {
                let c = &prepared[u];
                if taken[u] || u == anchor {
                    continue;
                }
                if !home && (c.waited_ms < fallback_ms || c.fallback != Some(a.region)) {
                    continue;
                }
                let distance = c.rating.abs_diff(a.rating);
                if rules.rating.is_some() && distance > u64::from(c.window) {
                    continue;
                }
                let (enqueued_ms, tie) = key(u);
                picks.push((distance, enqueued_ms, tie, u));
                seats += units[u].len();
                // Without a rating the oldest are the best: enough to fill every team twice
                // over is enough to look at.
                if rules.rating.is_none() && seats >= 2 * wanted {
                    break;
                }
            }
        }
        picks.sort_unstable();
        // Fill the teams: the anchor first, then the best picks that fit a team.
        let mut teams = vec![0usize; team_count];
        let mut chosen = vec![(anchor, seat(&mut teams, team_cap, size).unwrap_or(0))];
        let mut total = size;
        for &(_, _, _, u) in picks.iter() {
            if total == wanted {
                break;
            }
            let len = units[u].len();
            if total + len > wanted {
                continue;
            }
            if let Some(team) = seat(&mut teams, team_cap, len) {
                chosen.push((u, team));
                total += len;
            }
        }
        let enough =
            total == wanted || (a.waited_ms >= shape.wait_ms && total >= shape.min_players.max(1));
        if !enough {
            continue;
        }
        for &(u, _) in &chosen {
            taken[u] = true;
        }
        let members: Vec<usize> = chosen
            .iter()
            .flat_map(|(u, _)| units[*u].iter().copied())
            .collect();
        let ratings = chosen.iter().map(|(u, _)| prepared[*u].rating);
        let spread = ratings.clone().max().unwrap_or(0) - ratings.min().unwrap_or(0);
        let teams = (team_count > 1).then(|| {
            let mut teams = vec![Vec::new(); team_count];
            for &(u, team) in &chosen {
                teams[team].extend(units[u].iter().map(|&m| candidates[m].player_id));
            }
            teams
        });
        groups.push(Group {
            grouping: Grouping {
                window: rules.rating.is_some().then_some(a.window),
                spread: rules
                    .rating
                    .is_some()
                    .then(|| u32::try_from(spread).unwrap_or(u32::MAX)),
                region: rules.region.is_some().then(|| a.region.to_string()),
                teams,
            },
            members,
        });
    }
    groups
}

/// Whether `group` keeps `rules` (what every test of the matcher checks).
pub fn keeps_rules(
    candidates: &[Candidate<'_>],
    rules: &MatchRules,
    shape: Shape,
    now_ms: u64,
    group: &Group,
) -> Result<(), String> {
    let prepared: Vec<Prepared<'_>> = group
        .members
        .iter()
        .map(|&m| Prepared::new(&candidates[m], rules, now_ms))
        .collect();
    let a = &prepared[0];
    if group.members.len() > shape.players {
        return Err(format!(
            "{} players in a match of {}",
            group.members.len(),
            shape.players
        ));
    }
    if group.members.len() < shape.players
        && (group.members.len() < shape.min_players || a.waited_ms < shape.wait_ms)
    {
        return Err("a short match before its anchor waited".into());
    }
    // A party is whole, and on one team.
    for &m in &group.members {
        let Some(party) = candidates[m].party else {
            continue;
        };
        let all = candidates.iter().filter(|c| c.party == Some(party)).count();
        let here = group
            .members
            .iter()
            .filter(|&&o| candidates[o].party == Some(party))
            .count();
        if here != all {
            return Err(format!("party {party:x} split: {here} of {all}"));
        }
        if let Some(teams) = &group.grouping.teams {
            let on = |p: u64| teams.iter().position(|t| t.contains(&p));
            let team = on(candidates[m].player_id);
            if candidates
                .iter()
                .filter(|c| c.party == Some(party))
                .any(|c| on(c.player_id) != team)
            {
                return Err(format!("party {party:x} on two teams"));
            }
        }
    }
    let fallback_ms = u64::from(rules.region_fallback_s) * 1000;
    for (c, &m) in prepared.iter().zip(&group.members) {
        if c.exact != a.exact {
            return Err(format!("candidate {m}: exact properties differ"));
        }
        if rules.region.is_some()
            && c.region != a.region
            && (c.waited_ms < fallback_ms
                || a.waited_ms < fallback_ms
                || c.fallback != Some(a.region))
        {
            return Err(format!(
                "candidate {m}: region {} in a {} match",
                c.region, a.region
            ));
        }
        if rules.rating.is_some() {
            let d = c.rating.abs_diff(a.rating);
            if d > u64::from(a.window) || d > u64::from(c.window) {
                return Err(format!(
                    "candidate {m}: rating {} outside the window",
                    c.rating
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
