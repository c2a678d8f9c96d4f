//! `GET /api/v1/wallboard` (supervisors only): what the wallboard at `/supervisor` shows right
//! now, per queue (callers in the workflow, open callbacks, callbacks due, the longest wait,
//! agents available / busy / away) and per agent (state, current interaction, since when),
//! plus the webhooks' delivery state. Read from the store's Home List query (the waiting and
//! connected interactions only) and the presence kept in memory; the page fetches it again
//! whenever the event stream says something changed, and takes today's figures (service
//! level, charts) from `/api/v1/stats`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use jiff::Timestamp;
use serde::Serialize;

use super::{ApiError, AppState, AuthAgent};
use crate::interaction::{Interaction, InteractionId, Status, SubType};
use crate::queue::agent::{Presence, Role};
use crate::store::{ListQuery, MAX_PAGE};

/// Most interactions of one status read for a snapshot (a wallboard shows counts; past this
/// the counts say "at least").
const MAX_READ: usize = 20 * MAX_PAGE as usize;

/// One queue's tiles.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct QueueTiles {
    /// The queue.
    pub queue: String,
    /// Callers on the line in the workflow (bot).
    pub in_workflow: u64,
    /// Callbacks waiting for an agent (open).
    pub open_callbacks: u64,
    /// Open callbacks that may be dialled now (not-before passed).
    pub callbacks_due: u64,
    /// Voicemails waiting.
    pub open_voicemails: u64,
    /// Interactions connected to an agent now.
    pub connected: u64,
    /// Since when the longest-waiting interaction (bot or open) has waited, seconds.
    pub longest_wait_secs: Option<u64>,
    /// Agents serving the queue who are available and not busy.
    pub agents_available: u64,
    /// Agents serving the queue who hold a connected interaction.
    pub agents_busy: u64,
    /// Agents serving the queue who are away and not busy.
    pub agents_away: u64,
    /// The service-level target, seconds.
    pub service_level_target_secs: u64,
}

/// One agent's row.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AgentRow {
    /// The agent.
    pub id: String,
    /// Its queues.
    pub queues: Vec<String>,
    /// Its role.
    pub role: Role,
    /// `busy` (holds a connected interaction), else its presence.
    #[schema(value_type = String, pattern = "^(busy|available|away)$")]
    pub state: &'static str,
    /// The interaction it holds.
    pub interaction: Option<InteractionId>,
    /// That interaction's queue.
    pub interaction_queue: Option<String>,
    /// Since when it is in this state, as far as this instance knows (a presence change it
    /// saw, or its interaction's last change).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub since: Option<Timestamp>,
}

/// The snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Wallboard {
    /// When it was taken.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// Every queue in force, by name.
    pub queues: Vec<QueueTiles>,
    /// Every agent, in config order.
    pub agents: Vec<AgentRow>,
    /// Each webhook's delivery state.
    pub webhooks: Vec<crate::webhook::WebhookState>,
}

/// `GET /api/v1/wallboard`.
#[utoipa::path(
    get,
    path = "/api/v1/wallboard",
    tag = "reports",
    responses(
        (status = 200, description = "The wallboard now", body = Wallboard),
        (status = 403, description = "The caller is not a supervisor", body = crate::api::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::api::openapi::ErrorBody), (status = 429, description = "Locked out after bad tokens", body = crate::api::openapi::ErrorBody), (status = 503, description = "The store cannot serve now", body = crate::api::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn wallboard(
    State(st): State<AppState>,
    AuthAgent(me): AuthAgent,
) -> Result<Json<Wallboard>, ApiError> {
    if !me.is_supervisor() {
        return Err(ApiError::Forbidden(
            "the wallboard is for supervisors".into(),
        ));
    }
    let now = crate::clock::wall();
    let mut live = Vec::new();
    for status in [Status::Bot, Status::Open, Status::Connected] {
        live.extend(read_all(&st, status).await?);
    }
    let queues = (st.queues)();
    let presence: Vec<(crate::queue::agent::Agent, Presence, Option<Timestamp>)> = st
        .agents
        .all()
        .iter()
        .map(|a| (a.clone(), st.agents.presence(&a.id), st.agents.since(&a.id)))
        .collect();
    let mut board = snapshot(now, &queues, &presence, &live);
    board.webhooks = (st.webhooks)();
    Ok(Json(board))
}

/// Every interaction with `status` (up to [`MAX_READ`]).
async fn read_all(st: &AppState, status: Status) -> Result<Vec<Interaction>, ApiError> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = st
            .store
            .list(ListQuery {
                status: Some(status),
                queues: None,
                sub_type: None,
                limit: MAX_PAGE,
                cursor,
            })
            .await?;
        out.extend(page.items.into_iter().map(|l| l.interaction));
        match page.next_cursor {
            Some(c) if out.len() < MAX_READ => cursor = Some(c),
            _ => return Ok(out),
        }
    }
}

/// The snapshot of `live` (the bot, open and connected interactions) for `queues` (name,
/// target) and the agents with their presence and its time. Pure.
pub(crate) fn snapshot(
    now: Timestamp,
    queues: &[(String, std::time::Duration)],
    agents: &[(crate::queue::agent::Agent, Presence, Option<Timestamp>)],
    live: &[Interaction],
) -> Wallboard {
    let mut tiles: BTreeMap<&str, QueueTiles> = queues
        .iter()
        .map(|(q, target)| {
            (
                q.as_str(),
                QueueTiles {
                    queue: q.clone(),
                    service_level_target_secs: target.as_secs(),
                    ..QueueTiles::default()
                },
            )
        })
        .collect();
    let mut held: BTreeMap<&str, &Interaction> = BTreeMap::new();
    for i in live {
        if i.status == Status::Connected
            && let Some(a) = &i.assigned_agent
        {
            held.insert(a.as_str(), i);
        }
        let Some(t) = tiles.get_mut(i.queue.as_str()) else {
            continue;
        };
        match (i.status, i.sub_type) {
            (Status::Bot, _) => t.in_workflow += 1,
            (Status::Open, SubType::Callback) => {
                t.open_callbacks += 1;
                if i.not_due_at(now).is_none() {
                    t.callbacks_due += 1;
                }
            }
            (Status::Open, SubType::Voicemail) => t.open_voicemails += 1,
            (Status::Connected, _) => t.connected += 1,
            (Status::Open, SubType::Inbound) | (Status::Closed, _) => {}
        }
        if i.status.is_waiting() {
            let waited = now
                .duration_since(i.created_at)
                .as_secs()
                .max(0)
                .unsigned_abs();
            t.longest_wait_secs = Some(t.longest_wait_secs.unwrap_or(0).max(waited));
        }
    }
    let mut rows = Vec::with_capacity(agents.len());
    for (a, presence, since) in agents {
        let holding = held.get(a.id.as_str()).copied();
        let state = match (holding, presence) {
            (Some(_), _) => "busy",
            (None, Presence::Available) => "available",
            (None, Presence::Away) => "away",
        };
        for q in &a.queues {
            if let Some(t) = tiles.get_mut(q.as_str()) {
                match state {
                    "busy" => t.agents_busy += 1,
                    "available" => t.agents_available += 1,
                    _ => t.agents_away += 1,
                }
            }
        }
        rows.push(AgentRow {
            id: a.id.clone(),
            queues: a.queues.clone(),
            role: a.role,
            state,
            interaction: holding.map(|i| i.id),
            interaction_queue: holding.map(|i| i.queue.clone()),
            since: holding.map(|i| i.updated_at).or(*since),
        });
    }
    Wallboard {
        at: now,
        queues: tiles.into_values().collect(),
        agents: rows,
        webhooks: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::interaction::{Callback, Interaction};
    use crate::queue::agent::Agent;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn agent(id: &str) -> Agent {
        Agent {
            id: id.into(),
            endpoint: format!("sip:{id}@127.0.0.1"),
            queues: vec!["support".into()],
            token: String::new(),
            role: Role::Agent,
        }
    }

    fn i(id: i64, status: Status, sub_type: SubType, created: i64) -> Interaction {
        let mut i = Interaction::inbound("support", "+15550001", t(created));
        i.id = id;
        i.status = status;
        i.sub_type = sub_type;
        if sub_type == SubType::Callback {
            i.callback = Some(Callback {
                number: "15551234567".into(),
                attempts: 1,
                not_before: None,
                requested_at: None,
            });
        }
        i
    }

    #[test]
    fn tiles_count_the_live_interactions_and_the_agents() {
        let mut later = i(3, Status::Open, SubType::Callback, 50);
        later.callback.as_mut().unwrap().not_before = Some(t(500));
        let mut held = i(4, Status::Connected, SubType::Callback, 10);
        held.assigned_agent = Some("bob".into());
        held.updated_at = t(90);
        let live = [
            i(1, Status::Bot, SubType::Inbound, 40),
            i(2, Status::Open, SubType::Callback, 20),
            later,
            held,
            i(5, Status::Bot, SubType::Inbound, 0).with_queue("other"),
        ];
        let agents = [
            (agent("alice"), Presence::Available, Some(t(5))),
            (agent("bob"), Presence::Available, None),
            (agent("carol"), Presence::Away, None),
        ];
        let queues = [("support".to_owned(), Duration::from_secs(60))];
        let b = snapshot(t(100), &queues, &agents, &live);
        assert_eq!(b.queues.len(), 1, "queues not in force are not shown");
        let q = &b.queues[0];
        assert_eq!(
            (
                q.in_workflow,
                q.open_callbacks,
                q.callbacks_due,
                q.connected
            ),
            (1, 2, 1, 1)
        );
        assert_eq!(q.longest_wait_secs, Some(80));
        assert_eq!(
            (q.agents_available, q.agents_busy, q.agents_away),
            (1, 1, 1)
        );
        let bob = &b.agents[1];
        assert_eq!((bob.state, bob.interaction), ("busy", Some(4)));
        assert_eq!(bob.since, Some(t(90)));
        assert_eq!(b.agents[0].since, Some(t(5)));
    }

    trait WithQueue {
        fn with_queue(self, q: &str) -> Self;
    }

    impl WithQueue for Interaction {
        fn with_queue(mut self, q: &str) -> Self {
            self.queue = q.into();
            self
        }
    }
}
