//! A fixed history, run through the repository with fixed ids and times: every aggregate type
//! and every event type, profile updates with and without an image among them. The fixture
//! `tests/fixtures/log-v1.json` is this history as the code of its day wrote it (every event
//! in version 1); the upcasting test runs it again with today's code.

use events::article::{Article, ArticleCommand, Body, Description, Title};
use events::comment::{ArticleComments, CommentBody, CommentCommand};
use events::favorite::{favorite_id, Favorite, FavoriteCommand};
use events::user::{Email, User, UserCommand, UserUpdate, Username};
use events::{Metadata, Repository};

pub const ALICE: &str = "00000000-0000-4000-8000-00000000000a";
pub const BOB: &str = "00000000-0000-4000-8000-00000000000b";
pub const CAROL: &str = "00000000-0000-4000-8000-00000000000c";
pub const FIRST_ARTICLE: &str = "00000000-0000-4000-8000-0000000000a1";
pub const SECOND_ARTICLE: &str = "00000000-0000-4000-8000-0000000000b1";

/// Every aggregate the scenario writes, as (aggregate type, id).
pub fn aggregates() -> Vec<(&'static str, String)> {
    let mut all = vec![
        ("User", ALICE.to_owned()),
        ("User", BOB.to_owned()),
        ("User", CAROL.to_owned()),
        ("Article", FIRST_ARTICLE.to_owned()),
        ("Article", SECOND_ARTICLE.to_owned()),
        ("ArticleComments", FIRST_ARTICLE.to_owned()),
    ];
    for user in [BOB, CAROL] {
        all.push(("Favorite", favorite_id(FIRST_ARTICLE, user)));
    }
    all
}

fn at(second: u32) -> String {
    format!("2026-11-30T12:00:{second:02}.000Z")
}

fn metadata(actor: &str, step: u32) -> Metadata {
    Metadata {
        actor: Some(actor.to_owned()),
        correlation_id: Some(format!("scenario-{step}")),
        causation_id: None,
        request_id: Some(format!("request-{step}")),
    }
}

fn update(bio: Option<&str>, image: Option<&str>) -> UserCommand {
    UserCommand::Update(UserUpdate {
        bio: bio.map(str::to_owned),
        image: image.map(str::to_owned),
        ..UserUpdate::default()
    })
}

/// Runs the scenario; panics on any refusal (the history is valid by construction).
pub async fn run(repository: &Repository) {
    let mut step = 0;
    let mut next = |actor: &str| {
        step += 1;
        metadata(actor, step)
    };
    for (id, name) in [(ALICE, "alice"), (BOB, "bob"), (CAROL, "carol")] {
        let command = UserCommand::Register {
            user_id: id.to_owned(),
            email: Email::parse(&format!("{name}@example.com")).expect("email"),
            username: Username::parse(name).expect("username"),
            password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$fixture${name}"),
        };
        repository
            .execute::<User>(id, command, next(id))
            .await
            .expect("register");
    }
    let profile_updates = [
        (
            ALICE,
            update(
                Some("I write about Rust"),
                Some("https://img.example/a.png"),
            ),
        ),
        (BOB, update(None, Some("https://img.example/b.png"))),
        // Cleared again: no image, which version 1 wrote as "".
        (BOB, update(None, Some(""))),
        // A bio while the image was never set.
        (CAROL, update(Some("carol's bio"), None)),
        (ALICE, update(Some(""), Some("https://img.example/a2.png"))),
    ];
    for (id, command) in profile_updates {
        repository
            .execute::<User>(id, command, next(id))
            .await
            .expect("profile update");
    }
    let renames = UserCommand::Update(UserUpdate {
        email: Some(Email::parse("alice@new.example.com").expect("email")),
        username: Some(Username::parse("alice2").expect("username")),
        ..UserUpdate::default()
    });
    repository
        .execute::<User>(ALICE, renames, next(ALICE))
        .await
        .expect("rename");
    for (follower, followee) in [(ALICE, BOB), (ALICE, CAROL), (BOB, ALICE), (CAROL, ALICE)] {
        let command = UserCommand::Follow {
            followee_id: followee.to_owned(),
        };
        repository
            .execute::<User>(follower, command, next(follower))
            .await
            .expect("follow");
    }
    let unfollow = UserCommand::Unfollow {
        followee_id: CAROL.to_owned(),
    };
    repository
        .execute::<User>(ALICE, unfollow, next(ALICE))
        .await
        .expect("unfollow");
    for (id, author, slug, title, tags, second) in [
        (
            FIRST_ARTICLE,
            ALICE,
            "upcasting",
            "Upcasting",
            vec!["rust", "events"],
            10,
        ),
        (
            SECOND_ARTICLE,
            BOB,
            "snapshots",
            "Snapshots",
            vec!["dynamo"],
            11,
        ),
    ] {
        let command = ArticleCommand::Publish {
            article_id: id.to_owned(),
            author_id: author.to_owned(),
            slug: slug.to_owned(),
            title: Title::parse(title).expect("title"),
            description: Description::parse("about events").expect("description"),
            body: Body::parse("Old events stay readable.").expect("body"),
            tag_list: tags.into_iter().map(str::to_owned).collect(),
            at: at(second),
        };
        repository
            .execute::<Article>(id, command, next(author))
            .await
            .expect("publish");
    }
    let edit = ArticleCommand::Edit {
        actor_id: ALICE.to_owned(),
        title: Some(Title::parse("Upcasting old events").expect("title")),
        description: None,
        body: Some(Body::parse("Every old event stays readable.").expect("body")),
        slug: Some("upcasting-old-events".to_owned()),
        at: at(12),
    };
    repository
        .execute::<Article>(FIRST_ARTICLE, edit, next(ALICE))
        .await
        .expect("edit");
    for (author, body, second) in [(BOB, "first!", 13), (CAROL, "nice", 14), (BOB, "more", 15)] {
        let command = CommentCommand::Add {
            article_id: FIRST_ARTICLE.to_owned(),
            author_id: author.to_owned(),
            body: CommentBody::parse(body).expect("comment"),
            article_exists: true,
            at: at(second),
        };
        repository
            .execute::<ArticleComments>(FIRST_ARTICLE, command, next(author))
            .await
            .expect("comment");
    }
    let remove = CommentCommand::Remove {
        comment_id: 1,
        actor_id: BOB.to_owned(),
        at: at(16),
    };
    repository
        .execute::<ArticleComments>(FIRST_ARTICLE, remove, next(BOB))
        .await
        .expect("delete comment");
    for (user, second) in [(BOB, 17), (CAROL, 18)] {
        let command = FavoriteCommand::Favorite {
            article_id: FIRST_ARTICLE.to_owned(),
            user_id: user.to_owned(),
            article_exists: true,
            at: at(second),
        };
        repository
            .execute::<Favorite>(&favorite_id(FIRST_ARTICLE, user), command, next(user))
            .await
            .expect("favorite");
    }
    let unfavorite = FavoriteCommand::Unfavorite {
        article_id: FIRST_ARTICLE.to_owned(),
        user_id: CAROL.to_owned(),
        at: at(19),
    };
    repository
        .execute::<Favorite>(&favorite_id(FIRST_ARTICLE, CAROL), unfavorite, next(CAROL))
        .await
        .expect("unfavorite");
    let delete = ArticleCommand::Delete {
        actor_id: BOB.to_owned(),
        at: at(20),
    };
    repository
        .execute::<Article>(SECOND_ARTICLE, delete, next(BOB))
        .await
        .expect("delete article");
}
