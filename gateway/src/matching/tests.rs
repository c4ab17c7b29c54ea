//! The matcher on hand-made queues and on random ones (every formed match keeps the rules, no
//! player is in two matches, a queue that can form a full match does).

use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;
use tickroom_game::modes::MatchRules;
use tickroom_game::{MetaValue, PlayerMetadata};

use super::*;

fn rules() -> MatchRules {
    MatchRules {
        rating: Some("rating".into()),
        window: 50,
        widen_by: 25,
        widen_every_s: 5,
        max_window: 400,
        region: Some("region".into()),
        region_fallback_s: 10,
        exact: vec!["version".into()],
    }
}

const TEN: Shape = Shape {
    players: 10,
    min_players: 2,
    wait_ms: 30_000,
    teams: 1,
};

fn props(rating: i64, region: &str, version: &str, latency: &[(&str, i64)]) -> PlayerMetadata {
    let mut map = BTreeMap::new();
    map.insert("rating".to_string(), MetaValue::Int(rating));
    map.insert("region".to_string(), MetaValue::Str(region.into()));
    map.insert("version".to_string(), MetaValue::Str(version.into()));
    for (r, ms) in latency {
        map.insert(format!("latency.{r}"), MetaValue::Int(*ms));
    }
    PlayerMetadata(map)
}

fn candidates(queue: &[(u64, PlayerMetadata)]) -> Vec<Candidate<'_>> {
    queue
        .iter()
        .enumerate()
        .map(|(i, (enqueued_ms, properties))| Candidate {
            enqueued_ms: *enqueued_ms,
            tie: i as u128,
            properties,
            party: None,
            player_id: i as u64,
        })
        .collect()
}

#[test]
fn ten_close_ratings_form_a_match_and_a_far_one_waits() {
    let mut queue: Vec<(u64, PlayerMetadata)> = (0..10)
        .map(|i| (1_000 + i, props(1500 + i as i64 * 5, "eu", "1.2", &[])))
        .collect();
    queue.push((500, props(2000, "eu", "1.2", &[])));
    let c = candidates(&queue);
    let groups = form(&c, &rules(), TEN, 2_000, 10);
    assert_eq!(groups.len(), 1);
    let g = &groups[0];
    assert_eq!(g.members.len(), 10);
    assert!(!g.members.contains(&10), "2000 is far outside ±50");
    assert_eq!(
        g.grouping,
        Grouping {
            window: Some(50),
            spread: Some(45),
            region: Some("eu".into()),
            teams: None,
        }
    );
    assert_eq!(keeps_rules(&c, &rules(), TEN, 2_000, g), Ok(()));
}

#[test]
fn the_window_widens_with_the_wait() {
    // Ten players 100 apart: too far for ±50, close enough once the anchor's window and
    // every member's own window have grown.
    let queue: Vec<(u64, PlayerMetadata)> = (0..10)
        .map(|i| (0, props(1500 + (i as i64 % 2) * 100, "eu", "1.2", &[])))
        .collect();
    let c = candidates(&queue);
    assert!(form(&c, &rules(), TEN, 1_000, 10).is_empty());
    let groups = form(&c, &rules(), TEN, 10_000, 10);
    assert_eq!(groups.len(), 1, "after 10 s the window is ±100");
    assert_eq!(groups[0].grouping.window, Some(100));
    assert_eq!(rules().window_after(3_600_000), 400, "capped");
}

#[test]
fn versions_never_mix_and_regions_mix_only_after_the_fallback() {
    let mut queue: Vec<(u64, PlayerMetadata)> = (0..5)
        .map(|i| (i, props(1500, "eu", "1.2", &[("us", 90), ("asia", 200)])))
        .collect();
    queue.extend((0..5).map(|i| (i, props(1500, "us", "1.2", &[("eu", 80), ("asia", 150)]))));
    queue.extend((0..5).map(|i| (i, props(1500, "eu", "1.3", &[]))));
    let c = candidates(&queue);
    assert!(
        form(&c, &rules(), TEN, 5_000, 10).is_empty(),
        "before the fallback"
    );
    let groups = form(&c, &rules(), TEN, 11_000, 10);
    assert_eq!(groups.len(), 1);
    let members: HashSet<usize> = groups[0].members.iter().copied().collect();
    assert_eq!(
        members,
        (0..10).collect(),
        "eu and us 1.2 together, never 1.3"
    );
    assert!(groups[0].grouping.region.is_some());
    assert_eq!(keeps_rules(&c, &rules(), TEN, 11_000, &groups[0]), Ok(()));
}

#[test]
fn a_short_match_starts_once_its_anchor_waited() {
    let queue: Vec<(u64, PlayerMetadata)> =
        (0..3).map(|i| (i, props(1500, "eu", "1.2", &[]))).collect();
    let c = candidates(&queue);
    assert!(form(&c, &rules(), TEN, 29_000, 10).is_empty());
    let groups = form(&c, &rules(), TEN, 30_000, 10);
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].members.len(), 3);
}

#[test]
fn properties_are_checked_against_the_rules() {
    let r = rules();
    assert_eq!(
        check_properties(Some(&r), &props(1, "eu", "1", &[("us", 5)])),
        Ok(())
    );
    let mut unknown = props(1, "eu", "1", &[]);
    unknown
        .0
        .insert("map".into(), MetaValue::Str("dust".into()));
    assert_eq!(
        check_properties(Some(&r), &unknown),
        Err(PropertyError::Unknown("map".into()))
    );
    let mut missing = props(1, "eu", "1", &[]);
    missing.0.remove("version");
    assert_eq!(
        check_properties(Some(&r), &missing),
        Err(PropertyError::Missing("version".into()))
    );
    let mut text_rating = props(1, "eu", "1", &[]);
    text_rating
        .0
        .insert("rating".into(), MetaValue::Str("high".into()));
    assert!(matches!(
        check_properties(Some(&r), &text_rating),
        Err(PropertyError::Kind(..))
    ));
    assert_eq!(check_properties(None, &PlayerMetadata::default()), Ok(()));
    assert!(check_properties(None, &props(1, "eu", "1", &[])).is_err());
}

prop_compose! {
    fn queued()(
        enqueued_ms in 0u64..60_000,
        rating in 800i64..2200,
        region in 0usize..3,
        version in 0usize..2,
        lat in proptest::collection::vec(0i64..300, 3),
    ) -> (u64, PlayerMetadata) {
        let regions = ["eu", "us", "asia"];
        let latency: Vec<(&str, i64)> = regions.iter().copied().zip(lat).collect();
        (enqueued_ms, props(rating, regions[region], ["1.2", "1.3"][version], &latency))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the queue: nobody is in two matches, every match keeps every rule, and no
    /// match exceeds the room.
    #[test]
    fn every_match_keeps_the_rules(queue in proptest::collection::vec(queued(), 0..120), now in 0u64..90_000) {
        let c = candidates(&queue);
        let shape = Shape { players: 5, min_players: 2, wait_ms: 20_000, teams: 1 };
        let groups = form(&c, &rules(), shape, now, 1_000);
        let mut seen = HashSet::new();
        for g in &groups {
            for &m in &g.members {
                prop_assert!(seen.insert(m), "candidate {} in two matches", m);
            }
            prop_assert_eq!(keeps_rules(&c, &rules(), shape, now, g), Ok(()));
        }
    }

    /// Rules that allow everyone (one version and region, a window wider than any spread)
    /// leave fewer than a room's worth queued.
    #[test]
    fn a_queue_that_can_fill_rooms_does(ratings in proptest::collection::vec(1400i64..1600, 0..60)) {
        let queue: Vec<(u64, PlayerMetadata)> =
            ratings.iter().map(|&r| (0, props(r, "eu", "1.2", &[]))).collect();
        let c = candidates(&queue);
        let wide = MatchRules { window: 400, ..rules() };
        let groups = form(&c, &wide, TEN, 0, 1_000);
        prop_assert_eq!(groups.len(), queue.len() / 10);
    }
}

/// Candidates from (enqueued_ms, properties, party) entries; player i is candidate i.
fn party_candidates(queue: &[(u64, PlayerMetadata, Option<u128>)]) -> Vec<Candidate<'_>> {
    queue
        .iter()
        .enumerate()
        .map(|(i, (at, p, party))| Candidate {
            enqueued_ms: *at,
            tie: i as u128,
            properties: p,
            party: *party,
            player_id: i as u64,
        })
        .collect()
}

prop_compose! {
    /// A queue of solo players and parties of 2 to 4, in the `ranked` rules' terms.
    fn with_parties()(
        units in proptest::collection::vec((1usize..5, 1400i64..1600, 0u64..20_000, any::<bool>()), 0..40),
    ) -> Vec<(u64, PlayerMetadata, Option<u128>)> {
        let mut queue = Vec::new();
        for (n, (size, rating, at, solo)) in units.into_iter().enumerate() {
            let size = if solo { 1 } else { size };
            for _ in 0..size {
                let party = (size > 1).then_some(n as u128 + 1);
                queue.push((at, props(rating, "eu", "1.2", &[]), party));
            }
        }
        queue
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Parties are never split, never cross teams, and nobody is in two matches, with or
    /// without teams.
    #[test]
    fn parties_stay_whole_and_on_one_team(queue in with_parties(), teams in 1usize..3, now in 0u64..60_000) {
        let c = party_candidates(&queue);
        let shape = Shape { players: 6, min_players: 2, wait_ms: 30_000, teams };
        let groups = form(&c, &rules(), shape, now, 1_000);
        let mut seen = HashSet::new();
        for g in &groups {
            for &m in &g.members {
                prop_assert!(seen.insert(m), "candidate {} twice", m);
            }
            prop_assert_eq!(keeps_rules(&c, &rules(), shape, now, g), Ok(()));
            if teams > 1 {
                let t = g.grouping.teams.as_ref().expect("teams");
                prop_assert!(t.iter().all(|team| team.len() <= 6 / teams));
                prop_assert_eq!(t.iter().map(Vec::len).sum::<usize>(), g.members.len());
            }
        }
    }
}

#[test]
fn a_party_fills_a_room_with_solo_players_and_waits_when_it_cannot_fit() {
    // First come, first served (no rules), rooms of 4: a solo, a party of 3, a solo.
    let queue = [
        (0, PlayerMetadata::default(), None),
        (1, PlayerMetadata::default(), Some(7)),
        (1, PlayerMetadata::default(), Some(7)),
        (1, PlayerMetadata::default(), Some(7)),
        (2, PlayerMetadata::default(), None),
    ];
    let c = party_candidates(&queue);
    let shape = Shape {
        players: 4,
        min_players: 4,
        wait_ms: u64::MAX,
        teams: 1,
    };
    let groups = form(&c, &MatchRules::default(), shape, 10, 10);
    assert_eq!(groups.len(), 1);
    assert_eq!(
        groups[0].members,
        [0, 1, 2, 3],
        "the party whole, the last solo waits"
    );
    // Two teams of two: a party of three never fits.
    let teams = Shape { teams: 2, ..shape };
    assert!(form(&c, &MatchRules::default(), teams, 10, 10).is_empty());
}
