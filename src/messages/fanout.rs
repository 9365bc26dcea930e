//! The fan-out of a message: a runner takes a due message with a lease and puts it on the cards
//! of its audience, a batch at a time, saving its cursor after each batch.
//!
//! Each batch first writes the send records of its cards, then gives each card the message in
//! a version bump conditional on the card not carrying it yet; so a batch run twice (after a
//! crash, or by a node that took over an expired lease) changes nothing the second time. The
//! pace is bounded by `LOY_MESSAGE_CARDS_PER_SECOND`; the push pipeline delivers at its own.

use std::time::Duration;

use actix_web::web;
use chrono::{DateTime, Datelike, Utc};
use futures_util::future::join_all;

use super::{Audience, Message, MessageState, Wallet, audience};
use crate::domain::{Card, Program, SerialNumber};
use crate::state::AppState;
use crate::store::{CustomerCursor, CustomerSort, MessageSend, Reach, SendState, StoreError};
use crate::telemetry::error_chain;

/// How long a runner holds a message without saving it.
const LEASE: Duration = Duration::from_secs(60);
/// Cards read per batch.
const BATCH: usize = 200;
/// Cards of a batch worked on at once.
const IN_FLIGHT: usize = 16;

fn lease() -> chrono::Duration {
    chrono::Duration::from_std(LEASE).unwrap_or_else(|_| chrono::Duration::minutes(1))
}

/// Takes due messages and runs them until none is due; returns how many it took.
pub async fn run_due(state: &AppState) -> Result<usize, StoreError> {
    let mut ran = 0;
    loop {
        let now = state.clock.now();
        let Some(message) = state.store.take_message(now, now + lease()).await? else { return Ok(ran) };
        ran += 1;
        if let Err(e) = run(state, message).await {
            // The lease runs out and the message is taken again where its cursor stands.
            tracing::warn!(error = %error_chain(&e), "a message's fan-out stopped on a store error; it resumes later");
        }
    }
}

/// Runs due messages every `poll` until dropped: scheduled ones when their time comes, and
/// those a stopped node left.
pub async fn run_forever(state: web::Data<AppState>, poll: Duration) {
    loop {
        if let Err(e) = run_due(&state).await {
            tracing::warn!(error = %error_chain(&e), "running messages failed; trying again shortly");
        }
        tokio::time::sleep(poll).await;
    }
}

/// Starts the fan-out of a message just written to go out now, without waiting for the poll.
pub fn start(state: web::Data<AppState>) {
    tokio::spawn(async move {
        if let Err(e) = run_due(&state).await {
            tracing::warn!(error = %error_chain(&e), "running messages failed; the poll takes them up");
        }
    });
}

/// One attempt at a message held with a lease: batches until its audience is done, it is
/// cancelled, or its lease is lost.
async fn run(state: &AppState, mut message: Message) -> Result<(), StoreError> {
    tracing::info!(message = %message.id, attempt = message.attempts, "message fan-out started");
    let Some(program) = state.store.program(&message.program_id).await? else {
        message.state = MessageState::Cancelled;
        message.finished_at = Some(state.clock.now());
        state.store.save_message(&message).await?;
        return Ok(());
    };
    message.state = MessageState::Sending;
    if message.audience == Audience::All && !message.class_sent {
        if let Some(google) = &state.google {
            match google.add_class_message(&program, &message.id, &message.text).await {
                Ok(()) => message.class_sent = true,
                // The cards then get it on their objects, one by one.
                Err(e) => {
                    tracing::warn!(message = %message.id, error = %e, "adding a message to the Google class failed")
                }
            }
        }
    }
    let per_second = state.settings.push.message_cards_per_second.max(1);
    loop {
        let started = tokio::time::Instant::now();
        let after = message.cursor.as_deref().and_then(CustomerCursor::decode);
        let cards = match &message.audience {
            Audience::Customer { serial } => one_card(state, &message, serial).await?,
            _ => audience::page(&state.store, &message.program_id, after, BATCH).await?,
        };
        let now = state.clock.now();
        let Some(last) = cards.last() else {
            message.state = MessageState::Sent;
            message.finished_at = Some(now);
            message.updated_at = now;
            save(state, &message).await?;
            tracing::info!(message = %message.id, cards = message.fan_out.reached, "message put on every card of its audience");
            return Ok(());
        };
        message.cursor = Some(CustomerCursor::after(last, CustomerSort::Registered).encode());
        message.fan_out.scanned += cards.len() as u64;
        message.fan_out.reached += batch(state, &program, &message, &cards, now).await?;
        message.lease_until = now + lease();
        message.updated_at = now;
        if !save(state, &message).await? {
            tracing::info!(message = %message.id, "message cancelled or taken over; this runner stops");
            return Ok(());
        }
        let pace = Duration::from_secs_f64(cards.len() as f64 / per_second as f64);
        tokio::time::sleep(pace.saturating_sub(started.elapsed())).await;
        if !still_held(state, &message).await? {
            tracing::info!(message = %message.id, "message cancelled or taken over while pausing; this runner stops");
            return Ok(());
        }
    }
}

/// Whether the message is still this runner's to send: not cancelled, and not taken by another
/// runner (its attempts moved on) since it was taken.
async fn still_held(state: &AppState, message: &Message) -> Result<bool, StoreError> {
    Ok(state
        .store
        .message(&message.id)
        .await?
        .is_some_and(|stored| stored.state != MessageState::Cancelled && stored.attempts == message.attempts))
}

async fn save(state: &AppState, message: &Message) -> Result<bool, StoreError> {
    state.store.save_message(message).await
}

/// The one card of a `Customer` audience, unless the fan-out is past it.
async fn one_card(state: &AppState, message: &Message, serial: &str) -> Result<Vec<Card>, StoreError> {
    if message.cursor.is_some() {
        return Ok(Vec::new());
    }
    let Ok(serial) = SerialNumber::parse(serial) else { return Ok(Vec::new()) };
    let card = state.store.find_card(crate::store::CardLookup::Serial(&serial)).await?;
    Ok(card.into_iter().filter(|c| c.program_id == message.program_id).collect())
}

/// Gives the message to the cards of `cards` in its audience; returns how many newly got it.
///
/// One read learns where each card can be reached (its devices, its Google object), one write
/// stores the send records, and one more gives the cards the message (each card's bump still
/// conditional on its own version). A card a concurrent write moved on meanwhile is given it on
/// its own, re-read, in [`give`].
async fn batch(
    state: &AppState,
    program: &Program,
    message: &Message,
    cards: &[Card],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let serials: Vec<&str> = cards.iter().map(|c| c.serial.as_str()).collect();
    let reach = state.store.reach(&serials).await?;
    let reach_of = |card: &Card| reach.get(card.serial.as_str()).copied().unwrap_or_default();
    let mut members = Vec::new();
    for chunk in cards.chunks(IN_FLIGHT) {
        let included = join_all(chunk.iter().map(|c| member(state, message, c, reach_of(c), now))).await;
        for (card, included) in chunk.iter().zip(included) {
            if included? {
                members.push(card);
            }
        }
    }
    let sends: Vec<MessageSend> =
        members.iter().map(|card| send_for(state, message, card, reach_of(card), now)).collect();
    state.store.record_sends(&sends).await?;
    if message.bonus != 0 {
        for chunk in members.chunks(IN_FLIGHT) {
            for credited in join_all(chunk.iter().map(|c| credit_bonus(state, program, message, c, now))).await {
                credited?;
            }
        }
    }
    let mut updates = Vec::new();
    for card in members {
        if card.news.as_ref().is_some_and(|n| n.message_id == message.id) {
            continue;
        }
        super::delivery::superseded(&state.store, &state.metrics, card).await?;
        let mut next = card.bumped(now);
        next.news = Some(message.news_for(card, now));
        updates.push((next, card.version));
    }
    let written = state.store.put_news(&updates).await?;
    let mut reached = 0;
    for ((next, _), written) in updates.iter().zip(written) {
        let given = if written { Given::Now } else { give(state, message, &next.serial, now).await? };
        reached += settle_given(state, message, &next.serial, given).await?;
    }
    Ok(reached)
}

/// Whether `card` is in the message's audience (a wallet audience is answered from `reach`).
async fn member(
    state: &AppState,
    message: &Message,
    card: &Card,
    reach: Reach,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    Ok(match &message.audience {
        Audience::Wallet { wallet: Wallet::Apple } => !card.is_deleted() && reach.devices > 0,
        Audience::Wallet { wallet: Wallet::Google } => !card.is_deleted() && reach.google_saved,
        audience => audience.includes(&state.store, card, now).await?,
    })
}

/// The send record of `card`: queued to each wallet that holds its pass.
fn send_for(state: &AppState, message: &Message, card: &Card, reach: Reach, now: DateTime<Utc>) -> MessageSend {
    let apple = if reach.devices > 0 { SendState::Queued } else { SendState::None };
    let google = match (state.google.is_some() && reach.google_object, message.class_sent) {
        (false, _) => SendState::None,
        (true, true) => SendState::Class,
        (true, false) => SendState::Queued,
    };
    MessageSend { message_id: message.id.clone(), serial: card.serial.as_str().to_owned(), apple, google, at: now }
}

/// 1 when the card got the message now (and is handed to the push pipeline); a card whose
/// customer was deleted meanwhile counts its send as failed.
async fn settle_given(
    state: &AppState,
    message: &Message,
    serial: &SerialNumber,
    given: Given,
) -> Result<u64, StoreError> {
    Ok(match given {
        Given::Now => {
            state.changes.card_changed(serial);
            1
        }
        Given::Before => 0,
        Given::Never => {
            for wallet in [Wallet::Apple, Wallet::Google] {
                state.store.settle_send(&message.id, serial.as_str(), wallet, SendState::Failed).await?;
            }
            0
        }
    })
}

/// Credits the message's bonus to `card` through the ledger, once per card and year (the entry
/// id is fixed, so a batch run again finds it written). A card that cannot take it (blocked, or
/// a refusal of the program's rules) still gets the message.
async fn credit_bonus(
    state: &AppState,
    program: &Program,
    message: &Message,
    card: &Card,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    use crate::ledger::{Actor, Command, LedgerError, WriteContext, apply};
    // The year of the program's day the greeting was written for.
    let year = program.time_zone.date_of(message.send_at).year();
    let ctx = WriteContext {
        entry_id: super::automatic::birthday_entry_id(&card.serial, year),
        actor: Actor { source: crate::domain::EntrySource::System, id: None },
        idempotency: None,
        now,
        notify: Some(state.changes.clone()),
    };
    let command = Command::Adjust { points: message.bonus, reason: format!("Birthday bonus {year}") };
    match apply(state.store.as_ref(), program, &card.serial, &command, &ctx, None).await {
        Ok(_) => Ok(()),
        Err(LedgerError::Store(e)) => Err(e),
        Err(e) => {
            tracing::info!(serial = %card.serial, message = %message.id, reason = %e, "a message's bonus was not credited");
            Ok(())
        }
    }
}

/// What [`give`] did.
enum Given {
    Now,
    /// The card already carries the message (its batch ran before).
    Before,
    /// The customer was deleted meanwhile.
    Never,
}

/// Puts the message on the card (read afresh) in a new version, unless it already carries it
/// (a batch run again) or its customer was deleted. Retries when a concurrent write moved the
/// card on.
async fn give(
    state: &AppState,
    message: &Message,
    serial: &SerialNumber,
    now: DateTime<Utc>,
) -> Result<Given, StoreError> {
    for _ in 0..20 {
        let Some(card) = state.store.find_card(crate::store::CardLookup::Serial(serial)).await? else {
            return Ok(Given::Never);
        };
        if card.news.as_ref().is_some_and(|n| n.message_id == message.id) {
            return Ok(Given::Before);
        }
        if card.is_deleted() {
            return Ok(Given::Never);
        }
        super::delivery::superseded(&state.store, &state.metrics, &card).await?;
        let mut next = card.bumped(now);
        next.news = Some(message.news_for(&card, now));
        if state.store.update_card(&next, card.version).await? {
            return Ok(Given::Now);
        }
    }
    Err(StoreError::unavailable(anyhow::anyhow!("card {serial} kept changing while a message was put on it")))
}
