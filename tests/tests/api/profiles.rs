//! `GET /profiles/{username}` and `POST`/`DELETE /profiles/{username}/follow`.

use serde_json::json;
use tests::{unique_name, Api};

#[tokio::test]
async fn an_unknown_profile_is_404() {
    let api = Api::new();
    let nobody = unique_name("nobody");

    let reply = api.profile(&nobody, None).await;

    reply.expect_error(404, "profile");
}

#[tokio::test]
async fn a_profile_without_a_token_is_not_followed() {
    let api = Api::new();
    let user = api.new_user("public").await;

    let reply = api
        .eventually_get(&format!("/profiles/{}", user.username), None, |r| {
            r.status == 200
        })
        .await;

    assert_eq!(
        reply.body,
        json!({"profile": {"username": user.username, "bio": "", "image": "", "following": false}})
    );
}

#[tokio::test]
async fn ones_own_profile_is_not_followed() {
    let api = Api::new();
    let user = api.new_user("self").await;

    let profile = api
        .eventually_profile(&user.username, Some(&user.token), |_| true)
        .await;

    assert_eq!(profile["following"], false);
}

#[tokio::test]
async fn follow_and_unfollow_show_in_the_callers_profile_view() {
    let api = Api::new();
    let celeb = api.new_user("celeb").await;
    let fan = api.new_user("fan").await;
    let bystander = api.new_user("bystander").await;
    api.update_user(
        Some(&celeb.token),
        &json!({"bio": "famous", "image": "https://img.example.test/c.png"}),
    )
    .await
    .expect(200);

    let reply = api.follow(&celeb.username, Some(&fan.token)).await;
    assert_eq!(
        reply.expect(200),
        &json!({"profile": {
            "username": celeb.username,
            "bio": "famous",
            "image": "https://img.example.test/c.png",
            "following": true,
        }})
    );

    api.eventually_profile(&celeb.username, Some(&fan.token), |p| {
        p["following"] == true
    })
    .await;
    let anonymous = api.profile(&celeb.username, None).await;
    assert_eq!(anonymous.expect(200)["profile"]["following"], false);
    let other = api.profile(&celeb.username, Some(&bystander.token)).await;
    assert_eq!(other.expect(200)["profile"]["following"], false);
    // Following is one-way.
    let back = api
        .eventually_profile(&fan.username, Some(&celeb.token), |_| true)
        .await;
    assert_eq!(back["following"], false);

    // Twice is the same as once.
    let again = api.follow(&celeb.username, Some(&fan.token)).await;
    assert_eq!(again.expect(200)["profile"]["following"], true);

    let reply = api.unfollow(&celeb.username, Some(&fan.token)).await;
    let profile = &reply.expect(200)["profile"];
    assert_eq!(profile["following"], false);
    assert_eq!(profile["username"], celeb.username);
    assert_eq!(profile["bio"], "famous");
    api.eventually_profile(&celeb.username, Some(&fan.token), |p| {
        p["following"] == false
    })
    .await;

    // Unfollowing again is still fine.
    let again = api.unfollow(&celeb.username, Some(&fan.token)).await;
    assert_eq!(again.expect(200)["profile"]["following"], false);

    // And following once more works after an unfollow.
    api.follow(&celeb.username, Some(&fan.token))
        .await
        .expect(200);
    api.eventually_profile(&celeb.username, Some(&fan.token), |p| {
        p["following"] == true
    })
    .await;
}

#[tokio::test]
async fn follow_a_renamed_user_by_the_new_name() {
    let api = Api::new();
    let star = api.new_user("star").await;
    let fan = api.new_user("starfan").await;
    let new_name = unique_name("renamed");
    api.update_user(Some(&star.token), &json!({"username": new_name}))
        .await
        .expect(200);

    // The write side knows the new name at once, and no longer the old one.
    let reply = api.follow(&new_name, Some(&fan.token)).await;
    assert_eq!(reply.expect(200)["profile"]["username"], new_name);
    api.follow(&star.username, Some(&fan.token))
        .await
        .expect_error(404, "profile");

    api.eventually_profile(&new_name, Some(&fan.token), |p| p["following"] == true)
        .await;
}

#[tokio::test]
async fn a_follow_survives_a_rename_of_the_followed_user() {
    let api = Api::new();
    let star = api.new_user("star").await;
    let fan = api.new_user("loyal").await;
    api.follow(&star.username, Some(&fan.token))
        .await
        .expect(200);
    api.eventually_profile(&star.username, Some(&fan.token), |p| p["following"] == true)
        .await;

    let new_name = unique_name("rebrand");
    api.update_user(Some(&star.token), &json!({"username": new_name}))
        .await
        .expect(200);

    api.eventually_profile(&new_name, Some(&fan.token), |p| p["following"] == true)
        .await;
}

#[tokio::test]
async fn follow_or_unfollow_an_unknown_user_is_404() {
    let api = Api::new();
    let fan = api.new_user("lost").await;
    let nobody = unique_name("nobody");

    api.follow(&nobody, Some(&fan.token))
        .await
        .expect_error(404, "profile");
    api.unfollow(&nobody, Some(&fan.token))
        .await
        .expect_error(404, "profile");
}

#[tokio::test]
async fn following_yourself_is_422() {
    let api = Api::new();
    let user = api.new_user("narcissus").await;

    let reply = api.follow(&user.username, Some(&user.token)).await;

    assert_eq!(reply.status, 422, "{:#}", reply.body);
    assert!(
        reply.body["errors"]
            .as_object()
            .is_some_and(|e| !e.is_empty()),
        "{:#}",
        reply.body
    );
    let own = api
        .eventually_profile(&user.username, Some(&user.token), |_| true)
        .await;
    assert_eq!(own["following"], false);
}

#[tokio::test]
async fn follow_and_unfollow_without_a_token_are_401() {
    let api = Api::new();
    let user = api.new_user("guarded").await;

    api.follow(&user.username, None).await.expect_unauthorized();
    api.unfollow(&user.username, None)
        .await
        .expect_unauthorized();
    api.follow(&user.username, Some("garbage"))
        .await
        .expect_unauthorized();
}

#[tokio::test]
async fn profiles_of_usernames_with_dots_dashes_and_letters_beyond_ascii() {
    let api = Api::new();
    let fan = api.new_user("intl").await;
    for tag in ["dotted.name-x", "José_Ünïcödé"] {
        let username = unique_name(tag);
        let (_, user) = api
            .register(
                &username,
                &tests::email_for(&unique_name("intl")),
                "password",
            )
            .await;
        assert_eq!(user["username"], username);

        let profile = api.eventually_profile(&username, None, |_| true).await;
        assert_eq!(profile["username"], username);
        let reply = api.follow(&username, Some(&fan.token)).await;
        assert_eq!(reply.expect(200)["profile"]["username"], username);
        api.eventually_profile(&username, Some(&fan.token), |p| p["following"] == true)
            .await;
    }
}

#[tokio::test]
async fn head_of_a_profile_answers_like_get_without_a_body() {
    let api = Api::new();
    let user = api.new_user("head").await;
    api.eventually_profile(&user.username, None, |_| true).await;

    let reply = api
        .send(api.request(
            reqwest::Method::HEAD,
            &format!("/profiles/{}", user.username),
            None,
        ))
        .await;
    reply.expect(200);
    assert!(reply.body.is_null(), "{reply:#?}");

    let missing = api
        .send(api.request(
            reqwest::Method::HEAD,
            &format!("/profiles/{}", unique_name("nobody")),
            None,
        ))
        .await;
    missing.expect(404);
}
