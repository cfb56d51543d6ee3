//! Writes in quick succession and at the same time: the write side keeps its rules, and the read
//! side ends in the state of the last write.
//!
//! To know that the read side has seen every earlier write of a user, a test makes one more
//! write to the same user (a marker) and waits for it: a user's events are projected in order.

use futures::future::join_all;
use serde_json::json;
use tests::{unique_name, Api, TestUser};

/// Writes a marker bio on `user` and waits until `GET /user` shows it.
async fn settle(api: &Api, user: &TestUser) {
    let marker = unique_name("marker");
    api.update_user(Some(&user.token), &json!({ "bio": marker }))
        .await
        .expect(200);
    api.eventually_current_user(&user.token, |u| u["bio"] == marker)
        .await;
}

#[tokio::test]
async fn quick_successive_updates_end_in_the_last_state() {
    let api = Api::new();
    let user = api.new_user("quick").await;
    let mut names = vec![user.username.clone()];
    for i in 0..4 {
        let name = unique_name(&format!("step{i}"));
        let reply = api
            .update_user(
                Some(&user.token),
                &json!({"username": name, "bio": format!("bio {i}"), "image": format!("https://img.example.test/{i}.png")}),
            )
            .await;
        assert_eq!(reply.expect(200)["user"]["username"], name);
        names.push(name);
    }
    let last = names.last().cloned().unwrap_or_default();

    let profile = api
        .eventually_profile(&last, None, |p| p["bio"] == "bio 3")
        .await;
    assert_eq!(profile["image"], "https://img.example.test/3.png");
    let current = api
        .eventually_current_user(&user.token, |u| u["username"] == last.as_str())
        .await;
    assert_eq!(current["bio"], "bio 3");

    settle(&api, &user).await;
    for old in &names[..names.len() - 1] {
        api.profile(old, None).await.expect_error(404, "profile");
    }
    assert_eq!(
        api.profile(&last, None).await.expect(200)["profile"]["username"],
        last
    );
}

#[tokio::test]
async fn quick_follow_toggles_end_in_the_last_state() {
    let api = Api::new();
    let star = api.new_user("toggled").await;
    let fan = api.new_user("toggler").await;

    for _ in 0..3 {
        api.follow(&star.username, Some(&fan.token))
            .await
            .expect(200);
        api.unfollow(&star.username, Some(&fan.token))
            .await
            .expect(200);
    }
    settle(&api, &fan).await;
    let profile = api.profile(&star.username, Some(&fan.token)).await;
    assert_eq!(profile.expect(200)["profile"]["following"], false);

    api.unfollow(&star.username, Some(&fan.token))
        .await
        .expect(200);
    api.follow(&star.username, Some(&fan.token))
        .await
        .expect(200);
    settle(&api, &fan).await;
    let profile = api.profile(&star.username, Some(&fan.token)).await;
    assert_eq!(profile.expect(200)["profile"]["following"], true);
}

#[tokio::test]
async fn one_user_following_many_at_once_follows_them_all() {
    let api = Api::new();
    let fan = api.new_user("busyfan").await;
    let mut stars = Vec::new();
    for i in 0..8 {
        stars.push(api.new_user(&format!("star{i}")).await);
    }

    let replies = join_all(stars.iter().map(|star| {
        let api = api.clone();
        let username = star.username.clone();
        let token = fan.token.clone();
        tokio::spawn(async move { api.follow(&username, Some(&token)).await })
    }))
    .await;

    for reply in replies {
        let reply = reply.expect("task");
        assert_eq!(reply.expect(200)["profile"]["following"], true);
    }
    for star in &stars {
        api.eventually_profile(&star.username, Some(&fan.token), |p| p["following"] == true)
            .await;
    }
}

#[tokio::test]
async fn two_users_renaming_to_one_name_at_once_let_exactly_one_through() {
    let api = Api::new();
    let first = api.new_user("claimant").await;
    let second = api.new_user("claimant").await;
    let wanted = unique_name("wanted");

    let change = json!({ "username": wanted });
    let (a, b) = tokio::join!(
        api.update_user(Some(&first.token), &change),
        api.update_user(Some(&second.token), &change),
    );

    let (winner, loser, lost) = match (a.status.as_u16(), b.status.as_u16()) {
        (200, _) => (&first, &second, &b),
        (_, 200) => (&second, &first, &a),
        _ => panic!("neither rename went through: {a:#?} {b:#?}"),
    };
    lost.expect_error(422, "username");
    let profile = api.eventually_profile(&wanted, None, |_| true).await;
    assert_eq!(profile["username"], wanted);
    let won = api.login(&winner.email, &winner.password).await;
    assert_eq!(won.expect(200)["user"]["username"], wanted);
    let kept = api.login(&loser.email, &loser.password).await;
    assert_eq!(kept.expect(200)["user"]["username"], loser.username);
}

#[tokio::test]
async fn a_refused_change_claims_nothing() {
    let api = Api::new();
    let user = api.new_user("partial").await;
    let other = api.new_user("holder").await;
    let fresh = unique_name("fresh");
    let fresh_email = tests::email_for(&fresh);

    // A new email together with a taken username: the whole change is refused.
    api.update_user(
        Some(&user.token),
        &json!({"email": fresh_email, "username": other.username}),
    )
    .await
    .expect_error(422, "username");
    api.login(&user.email, &user.password).await.expect(200);
    api.login(&fresh_email, &user.password)
        .await
        .expect_unauthorized();

    // A registration with a taken username left the fresh email free as well.
    api.try_register(&other.username, &fresh_email, "password")
        .await
        .expect_error(422, "username");
    api.register(&fresh, &fresh_email, "password").await;
}

/// Sends a bio of `size` characters: it must be refused as a client error or, once accepted,
/// be shown by the read side.
async fn large_bio_is_refused_or_eventually_shown(size: usize) {
    let api = Api::new();
    let user = api.new_user("bigbio").await;
    let bio = format!("{size}:{}", "b".repeat(size));

    let reply = api
        .update_user(Some(&user.token), &json!({ "bio": bio }))
        .await;

    assert!(
        reply.status.is_success() || reply.status.is_client_error(),
        "a bio of {size} characters answered {reply:?}"
    );
    if reply.status.is_success() {
        let prefix = format!("{size}:");
        api.eventually_get("/user", Some(&user.token), |r| {
            r.status == 200
                && r.body["user"]["bio"]
                    .as_str()
                    .is_some_and(|b| b.starts_with(&prefix))
        })
        .await;
    }
}

/// Ignored until fixed: the event of this change is over the 256 KiB SNS message limit; the
/// `PUT` answers 200 and the read models never show the bio (until the user's next write).
/// Run with `cargo test -p tests -- --ignored`.
#[tokio::test]
#[ignore = "product bug: a bio over the SNS message limit is accepted but never projected"]
async fn a_bio_over_the_message_limit_is_refused_or_eventually_shown() {
    large_bio_is_refused_or_eventually_shown(270_000).await;
}

/// Ignored until fixed: the event of this change is over DynamoDB's 400 KB item limit; the
/// `PUT` answers 503 instead of a client error. Run with `cargo test -p tests -- --ignored`.
#[tokio::test]
#[ignore = "product bug: a bio over the DynamoDB item limit answers 503"]
async fn a_bio_over_the_item_limit_is_a_client_error() {
    large_bio_is_refused_or_eventually_shown(450_000).await;
}

/// A bio well within every limit is stored and shown.
#[tokio::test]
async fn a_long_bio_is_shown() {
    large_bio_is_refused_or_eventually_shown(100_000).await;
}
