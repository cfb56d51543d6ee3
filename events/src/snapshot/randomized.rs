//! Snapshot + tail equals the whole fold, for every aggregate type, on randomized histories.
//!
//! Each history is made the way the write side makes one: random commands (biased towards
//! ones the aggregate accepts) are handled one after the other, and the events each decides are
//! kept, each passed through its stored form as a load reads it. The history is then loaded
//! the way `Repository::load` does, taking a snapshot (serialized and restored, as the
//! `snapshots` table holds it) at random points, and at each point the restored state must
//! equal the state it was taken of; at the end the state must equal the fold of every event.
//! A failure names the seed, so it can be run again alone.

use std::fmt::Debug;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use super::{Snapshot, Snapshotted};
use crate::article::{Article, ArticleCommand, Body, Description, Title};
use crate::comment::{ArticleComments, CommentBody, CommentCommand};
use crate::envelope::EventSchema;
use crate::favorite::{Favorite, FavoriteCommand};
use crate::user::{Email, User, UserCommand, UserUpdate, Username};

/// Histories per aggregate type, and the most commands in one.
const HISTORIES: u64 = 60;
const MAX_COMMANDS: usize = 240;

/// The events a run of random commands decides, each read back from its stored form.
fn history<A>(
    rng: &mut StdRng,
    mut command: impl FnMut(&mut StdRng, &A) -> A::Command,
) -> Vec<A::Event>
where
    A: Aggregate<Services = ()> + Clone,
    A::Event: EventSchema,
{
    // `handle` is async only in its signature: nothing in it waits.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let mut state = A::default();
    let mut events = Vec::new();
    for _ in 0..rng.random_range(1..=MAX_COMMANDS) {
        let mut next = state.clone();
        let sink = EventSink::<A>::default();
        if runtime
            .block_on(next.handle(command(rng, &state), &(), &sink))
            .is_ok()
        {
            state = next;
            for event in runtime.block_on(sink.collect()) {
                let (event_type, version, payload) = event.to_stored();
                let read = A::Event::from_stored(&event_type, version, &payload)
                    .unwrap_or_else(|error| panic!("{event_type} reads back: {error}"));
                events.push(read);
            }
        }
    }
    events
}

/// Loads `events` through snapshots taken at random points and checks the result against the
/// plain fold.
fn check<A>(seed: u64, events: &[A::Event], rng: &mut StdRng)
where
    A: Snapshotted + PartialEq + Debug + Clone,
    A::Event: Clone,
{
    let mut folded = A::default();
    for event in events {
        folded.apply(event.clone());
    }
    let mut loaded = A::default();
    let mut snapshots = 0;
    for (index, event) in events.iter().enumerate() {
        if rng.random_ratio(1, 8) {
            let snapshot = Snapshot::of(&loaded, index as u64).expect("a small state");
            let restored = snapshot
                .restore::<A>()
                .unwrap_or_else(|| panic!("seed {seed}: snapshot after {index} restores"));
            assert_eq!(restored, loaded, "seed {seed}: snapshot after {index}");
            loaded = restored;
            snapshots += 1;
        }
        loaded.apply(event.clone());
    }
    assert_eq!(
        loaded,
        folded,
        "seed {seed}: {} events through {snapshots} snapshots",
        events.len()
    );
    let last = Snapshot::of(&folded, events.len() as u64).expect("a small state");
    assert_eq!(
        last.restore::<A>().as_ref(),
        Some(&folded),
        "seed {seed}: the final snapshot"
    );
}

/// Runs [`HISTORIES`] randomized histories of `A`; returns how many events they held.
fn histories<A>(command: impl Fn(&mut StdRng, &A) -> A::Command + Copy) -> usize
where
    A: Snapshotted<Services = ()> + PartialEq + Debug + Clone,
    A::Event: EventSchema + Clone,
{
    let mut total = 0;
    for seed in 0..HISTORIES {
        let mut rng = StdRng::seed_from_u64(seed);
        let events = history::<A>(&mut rng, command);
        check::<A>(seed, &events, &mut rng);
        total += events.len();
    }
    total
}

/// A timestamp that moves with every command, as the handlers' clock does.
fn at(rng: &mut StdRng) -> String {
    format!(
        "2026-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        rng.random_range(1..=12),
        rng.random_range(1..=28),
        rng.random_range(0..24),
        rng.random_range(0..60),
        rng.random_range(0..60),
        rng.random_range(0..1000)
    )
}

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from.choose(rng).copied().unwrap_or_default()
}

/// `Some(value)` half of the time.
fn maybe<T>(rng: &mut StdRng, value: impl FnOnce(&mut StdRng) -> T) -> Option<T> {
    rng.random_bool(0.5).then(|| value(rng))
}

const PEOPLE: &[&str] = &["me", "ann", "bob", "cy", "dee"];

fn user_command(rng: &mut StdRng, state: &User) -> UserCommand {
    let name = |rng: &mut StdRng| Username::parse(pick(rng, PEOPLE)).expect("a username");
    let email = |rng: &mut StdRng| {
        Email::parse(&format!("{}@example.com", pick(rng, PEOPLE))).expect("an email")
    };
    match rng.random_range(0..10) {
        0 => UserCommand::Register {
            user_id: "me".into(),
            email: email(rng),
            username: name(rng),
            password_hash: format!("hash{}", rng.random_range(0..3)),
        },
        _ if !state.is_registered() && rng.random_bool(0.8) => UserCommand::Register {
            user_id: "me".into(),
            email: email(rng),
            username: name(rng),
            password_hash: "hash".into(),
        },
        1..=4 => UserCommand::Update(UserUpdate {
            email: maybe(rng, email),
            username: maybe(rng, name),
            password_hash: maybe(rng, |rng| format!("hash{}", rng.random_range(0..3))),
            bio: maybe(rng, |rng| {
                pick(rng, &["", "I work at statefarm", "ünïcode ✓"]).into()
            }),
            image: maybe(rng, |rng| {
                pick(rng, &["", "https://i.example/a.png"]).into()
            }),
        }),
        5..=7 => UserCommand::Follow {
            followee_id: pick(rng, PEOPLE).into(),
        },
        _ => UserCommand::Unfollow {
            followee_id: pick(rng, PEOPLE).into(),
        },
    }
}

fn article_command(rng: &mut StdRng, state: &Article) -> ArticleCommand {
    let title = |rng: &mut StdRng| {
        Title::parse(pick(rng, &["How to", "Why not", "Ünïcode"])).expect("a title")
    };
    let author = pick(rng, &["ann", "ann", "bob"]);
    // A deletion ends an article's history: rare, so that most histories are long.
    match rng.random_range(0..60) {
        _ if state.id.is_none() && rng.random_bool(0.9) => ArticleCommand::Publish {
            article_id: "a1".into(),
            author_id: author.into(),
            slug: "how-to-a1".into(),
            title: title(rng),
            description: Description::parse("d").expect("a description"),
            body: Body::parse("b").expect("a body"),
            tag_list: PEOPLE[..rng.random_range(0..PEOPLE.len())]
                .iter()
                .map(|tag| tag.to_string())
                .collect(),
            at: at(rng),
        },
        0 => ArticleCommand::Delete {
            actor_id: author.into(),
            at: at(rng),
        },
        _ => ArticleCommand::Edit {
            actor_id: author.into(),
            title: maybe(rng, title),
            description: maybe(rng, |rng| {
                Description::parse(pick(rng, &["short", "longer one"])).expect("a description")
            }),
            body: maybe(rng, |rng| {
                Body::parse(pick(rng, &["x", "y\nz"])).expect("a body")
            }),
            slug: maybe(rng, |rng| format!("slug-{}", rng.random_range(0..4))),
            at: at(rng),
        },
    }
}

fn comment_command(rng: &mut StdRng, state: &ArticleComments) -> CommentCommand {
    let author = pick(rng, &["ann", "ann", "ann", "bob", "cy"]);
    if rng.random_ratio(2, 3) {
        CommentCommand::Add {
            article_id: "a1".into(),
            author_id: author.into(),
            body: CommentBody::parse(pick(rng, &["first!", "ünïcode ✓"])).expect("a body"),
            article_exists: rng.random_ratio(19, 20),
            at: at(rng),
        }
    } else {
        CommentCommand::Remove {
            comment_id: rng.random_range(0..=state.next_id + 1),
            actor_id: author.into(),
            at: at(rng),
        }
    }
}

fn favorite_command(rng: &mut StdRng, _state: &Favorite) -> FavoriteCommand {
    if rng.random_bool(0.5) {
        FavoriteCommand::Favorite {
            article_id: "a1".into(),
            user_id: "ann".into(),
            article_exists: rng.random_ratio(9, 10),
            at: at(rng),
        }
    } else {
        FavoriteCommand::Unfavorite {
            article_id: "a1".into(),
            user_id: "ann".into(),
            at: at(rng),
        }
    }
}

#[test]
fn users_load_the_same_through_snapshots() {
    let events = histories::<User>(user_command);
    assert!(events > HISTORIES as usize * 20, "{events} events in all");
}

#[test]
fn articles_load_the_same_through_snapshots() {
    let events = histories::<Article>(article_command);
    assert!(events > HISTORIES as usize * 20, "{events} events in all");
}

#[test]
fn comment_threads_load_the_same_through_snapshots() {
    let events = histories::<ArticleComments>(comment_command);
    assert!(events > HISTORIES as usize * 20, "{events} events in all");
}

#[test]
fn favorites_load_the_same_through_snapshots() {
    let events = histories::<Favorite>(favorite_command);
    assert!(events > HISTORIES as usize * 20, "{events} events in all");
}
