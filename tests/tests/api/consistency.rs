//! Writes in quick succession and at the same time: the write side keeps its rules, and the read
//! side ends in the state of the last write.
//!
//! To know that the read side has seen every earlier write of a user, a test makes one more
//! write to the same user (a marker) and waits for it: a user's events are projected in order.

use futures::future::join_all;
use serde_json::json;
use tests::{email_for, unique_name, Api, TestUser};

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

/// Sends a bio of `size` characters and expects it shown by the read side.
async fn long_bio_is_shown(size: usize) {
    let api = Api::new();
    let user = api.new_user("bigbio").await;
    let head = format!("{size}:");
    let bio = format!("{head}{}", "b".repeat(size - head.len()));
    api.update_user(Some(&user.token), &json!({ "bio": bio }))
        .await
        .expect(200);
    api.eventually_get("/user", Some(&user.token), |r| {
        r.status == 200 && r.body["user"]["bio"].as_str() == Some(bio.as_str())
    })
    .await;
}

/// Sends a bio of `size` characters and expects a 422 naming `bio`, with nothing changed.
async fn overlong_bio_is_refused(size: usize) {
    let api = Api::new();
    let user = api.new_user("bigbio").await;
    api.update_user(
        Some(&user.token),
        &json!({ "bio": "b".repeat(size), "image": "https://x/y.png" }),
    )
    .await
    .expect_error(422, "bio");
    // The image sent with it was not applied either: a later write is seen without it.
    api.update_user(Some(&user.token), &json!({ "bio": "after" }))
        .await
        .expect(200);
    api.eventually_get("/user", Some(&user.token), |r| {
        r.status == 200 && r.body["user"]["bio"] == "after" && r.body["user"]["image"] == ""
    })
    .await;
}

/// The longest bio accepted (10,000 characters) is stored and shown.
#[tokio::test]
async fn a_bio_at_the_limit_is_shown() {
    long_bio_is_shown(10_000).await;
}

/// One character more is a 422, as are bios over the SNS message (256 KiB) and DynamoDB
/// item (400 KB) limits: they never reach the store.
#[tokio::test]
async fn a_bio_over_the_limit_is_refused() {
    overlong_bio_is_refused(10_001).await;
    overlong_bio_is_refused(270_000).await;
    overlong_bio_is_refused(450_000).await;
}

/// Dot-only or dot-first usernames would be resolved away in URLs: refused.
#[tokio::test]
async fn usernames_starting_with_a_dot_are_refused() {
    let api = Api::new();
    for name in [".", "..", ".hidden"] {
        let email = email_for(&unique_name("dots"));
        api.try_register(name, &email, "password")
            .await
            .expect_error(422, "username");
    }
}
