//! Parsing the replies of the directory's Lua scripts into directory types. Ids that may
//! exceed 2^53 arrive as decimal strings.

use tickroom_game::PlayerMetadata;
use tickroom_protocol::api::Grouping;

use crate::directory::{
    Assignment, DirectoryError, EnqueueOutcome, Formation, FormedMatch, MatchedPlayer, PartyAnswer,
    PartyRecord, RoomRecord, TicketId, TicketRecord, TicketStatus,
};

/// Data in Redis that is not what the scripts write.
pub(super) fn malformed(what: &dyn std::fmt::Display) -> DirectoryError {
    DirectoryError::Unavailable(format!("malformed directory data in redis: {what}"))
}

fn number<T: std::str::FromStr>(field: Option<&String>) -> Result<T, DirectoryError> {
    field
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| malformed(&"expected a number"))
}

/// `{player, mode, enq}` (queued) or
/// `{player, mode, enq, room_id, server_json, room_mode, metadata_json or '', grouping_json or
/// ''}` (matched).
pub(super) fn ticket_record(
    ticket_id: TicketId,
    fields: &[String],
) -> Result<TicketRecord, DirectoryError> {
    let status = if fields.len() >= 6 {
        let metadata = match fields.get(6).map(String::as_str) {
            None | Some("") => PlayerMetadata::default(),
            Some(json) => serde_json::from_str(json).map_err(|e| malformed(&e))?,
        };
        TicketStatus::Matched(Assignment {
            room_id: number(fields.get(3))?,
            mode: fields[5].clone(),
            server: serde_json::from_str(&fields[4]).map_err(|e| malformed(&e))?,
            metadata,
            grouping: grouping(fields.get(7))?,
        })
    } else {
        TicketStatus::Queued
    };
    Ok(TicketRecord {
        ticket_id,
        player_id: number(fields.first())?,
        mode: fields.get(1).cloned().unwrap_or_default(),
        enqueued_ms: number(fields.get(2))?,
        status,
    })
}

/// A grouping's JSON (`None` when absent or empty: a first-come mode's room).
fn grouping(field: Option<&String>) -> Result<Option<Box<Grouping>>, DirectoryError> {
    match field.map(String::as_str) {
        None | Some("") => Ok(None),
        Some(json) => serde_json::from_str(json)
            .map(|g| Some(Box::new(g)))
            .map_err(|e| malformed(&e)),
    }
}

/// `{server_id, server_json, epoch, mode, created_ms, players, join_by, joined, alive,
/// grouping_json}` (the last two only from `room.lua`).
pub(super) fn room_record(room_id: u64, fields: &[String]) -> Result<RoomRecord, DirectoryError> {
    if fields.len() < 8 {
        return Err(malformed(&"room record"));
    }
    let players = fields[5]
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().map_err(|e| malformed(&e)))
        .collect::<Result<Vec<u64>, _>>()?;
    Ok(RoomRecord {
        room_id,
        mode: fields[3].clone(),
        server: serde_json::from_str(&fields[1]).map_err(|e| malformed(&e))?,
        players,
        created_ms: number(fields.get(4))?,
        epoch: number(fields.get(2))?,
        join_by_ms: number(fields.get(6))?,
        joined: fields[7] == "1",
        grouping: grouping(fields.get(9))?,
        code: fields.get(10).filter(|c| !c.is_empty()).cloned(),
    })
}

/// `enqueue.lua`'s reply; `None` for `party_changed`.
pub(super) fn parse_enqueue(reply: &[String]) -> Result<Option<EnqueueOutcome>, DirectoryError> {
    let number = |i: usize| reply.get(i).and_then(|n| n.parse::<u64>().ok());
    let bad = || malformed(&"enqueue reply");
    Ok(Some(match reply.first().map(String::as_str) {
        Some("queued") => EnqueueOutcome::Queued,
        Some("pending") => EnqueueOutcome::MatchPending {
            room_id: number(1).ok_or_else(bad)?,
            retry_after_ms: number(2).ok_or_else(bad)?,
        },
        Some("too_many_rooms") => EnqueueOutcome::TooManyRooms {
            open: number(1)
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
                .ok_or_else(bad)?,
        },
        Some("already") => EnqueueOutcome::AlreadyQueued(
            reply.get(1).and_then(|t| t.parse().ok()).ok_or_else(bad)?,
        ),
        Some("party_changed") => return Ok(None),
        Some("full") => return Err(DirectoryError::Full("matchmaking queue")),
        Some("collision") => return Err(DirectoryError::Unavailable("ticket id collision".into())),
        _ => return Err(bad()),
    }))
}

/// `party.lua`'s `{'in', id, code, leader, members, tickets}` and its refusals.
pub(super) fn parse_party_answer(reply: &[String]) -> Result<PartyAnswer, DirectoryError> {
    let bad = || malformed(&"party reply");
    match reply.first().map(String::as_str) {
        Some("in") if reply.len() >= 6 => {
            let ids = |csv: &str| -> Result<Vec<u64>, DirectoryError> {
                csv.split(',')
                    .filter(|m| !m.is_empty())
                    .map(|m| m.parse().map_err(|_| bad()))
                    .collect()
            };
            let tickets = reply[5]
                .split(',')
                .filter(|t| !t.is_empty())
                .map(|pair| {
                    let (player, ticket) = pair.split_once(':').ok_or_else(bad)?;
                    Ok((
                        player.parse().map_err(|_| bad())?,
                        ticket.parse().map_err(|_| bad())?,
                    ))
                })
                .collect::<Result<Vec<_>, DirectoryError>>()?;
            Ok(PartyAnswer::In(Box::new(PartyRecord {
                party_id: reply[1].parse().map_err(|_| bad())?,
                code: reply[2].clone(),
                leader: reply[3].parse().map_err(|_| bad())?,
                members: ids(&reply[4])?,
                tickets,
            })))
        }
        Some("in_another") => Ok(PartyAnswer::InAnother(
            reply.get(1).and_then(|t| t.parse().ok()).ok_or_else(bad)?,
        )),
        Some("closed") => Ok(PartyAnswer::Closed),
        Some("not_found") => Ok(PartyAnswer::NotFound),
        _ => Err(bad()),
    }
}

/// `still_queued`, then per match `room_id, server_id, n, n × (ticket, player, enqueued_ms)`.
pub(super) fn parse_formation(reply: &[String]) -> Result<Formation, DirectoryError> {
    let mut fields = reply.iter();
    let mut formation = Formation {
        matches: Vec::new(),
        still_queued: number(fields.next())?,
    };
    while let Some(room_id) = fields.next() {
        let room_id = number(Some(room_id))?;
        let server_id = fields.next().cloned().unwrap_or_default();
        let count: usize = number(fields.next())?;
        let mut players = Vec::with_capacity(count);
        for _ in 0..count {
            let ticket = fields.next().and_then(|t| t.parse::<TicketId>().ok());
            players.push(MatchedPlayer {
                ticket_id: ticket.ok_or_else(|| malformed(&"ticket id"))?,
                player_id: number(fields.next())?,
                enqueued_ms: number(fields.next())?,
            });
        }
        formation.matches.push(FormedMatch {
            room_id,
            server_id,
            players,
            grouping: None,
        });
    }
    Ok(formation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::RoomServerInfo;

    #[test]
    fn formation_replies_parse() {
        let reply: Vec<String> = [
            "2",
            "77",
            "s1",
            "2",
            "0000000000000000000000000000000a",
            "18446744073709551615",
            "1000",
            "0000000000000000000000000000000b",
            "5",
            "1001",
        ]
        .map(String::from)
        .to_vec();
        let f = parse_formation(&reply).unwrap();
        assert_eq!(f.still_queued, 2);
        assert_eq!(f.matches.len(), 1);
        assert_eq!(f.matches[0].room_id, 77);
        assert_eq!(f.matches[0].players[0].player_id, u64::MAX);
        assert_eq!(f.matches[0].players[1].ticket_id, TicketId(0xb));
        assert!(parse_formation(&reply[..5]).is_err());
    }

    #[test]
    fn matched_ticket_replies_carry_their_metadata() {
        let server = serde_json::to_string(&RoomServerInfo {
            server_id: "s".into(),
            quic_addr: "q".into(),
            ws_addr: "w".into(),
            cert_fingerprint: "f".into(),
            ws_tls: false,
            capacity: 10,
            load: 3,
            draining: false,
        })
        .unwrap();
        let mut metadata = PlayerMetadata::default();
        metadata
            .0
            .insert("level".into(), tickroom_game::MetaValue::Int(3));
        let json = serde_json::to_string(&metadata).unwrap();
        let fields = |meta: &str| -> Vec<String> {
            ["7", "duel", "1000", "9", server.as_str(), "duel", meta]
                .map(String::from)
                .to_vec()
        };
        let assignment =
            |fields: &[String]| match ticket_record(TicketId(1), fields).unwrap().status {
                TicketStatus::Matched(a) => a,
                TicketStatus::Queued => panic!("not matched"),
            };
        assert_eq!(assignment(&fields(&json)).metadata, metadata);
        assert_eq!(assignment(&fields("")).metadata, PlayerMetadata::default());
        assert!(ticket_record(TicketId(1), &fields("{")).is_err());
    }

    #[test]
    fn room_records_parse_players_and_epoch() {
        let server = RoomServerInfo {
            server_id: "s".into(),
            quic_addr: "q".into(),
            ws_addr: "w".into(),
            cert_fingerprint: "f".into(),
            ws_tls: false,
            capacity: 10,
            load: 3,
            draining: false,
        };
        let fields: Vec<String> = vec![
            "s".into(),
            serde_json::to_string(&server).unwrap(),
            "4".into(),
            "duel".into(),
            "1700000000000".into(),
            "1,18446744073709551615".into(),
            "1700000020000".into(),
            "1".into(),
        ];
        let r = room_record(9, &fields).unwrap();
        assert_eq!((r.room_id, r.epoch, r.mode.as_str()), (9, 4, "duel"));
        assert_eq!((r.join_by_ms, r.joined), (1_700_000_020_000, true));
        assert!(room_record(9, &fields[..7]).is_err());
        assert_eq!(r.players, vec![1, u64::MAX]);
        assert_eq!(r.server, server);
    }
}
