//! `Authorization: Token <jwt>`: only unexpired HS256 tokens signed with the stack's key pass.
//!
//! Each refusal is checked next to a forged token that differs only in the point under test
//! and is accepted, so a 401 cannot come from a mistake in the forging.

use rand::RngCore;
use reqwest::header::AUTHORIZATION;
use reqwest::Method;
use serde_json::json;
use tests::{base64url, sign_with, unix_now, Api, TestUser};

/// A user whose `GET /user` already answers 200 (the projection has caught up), and its id.
async fn projected_user(api: &Api, tag: &str) -> (TestUser, String) {
    let user = api.new_user(tag).await;
    api.eventually_get("/user", Some(&user.token), |r| r.status == 200)
        .await;
    let id = api.stack().verify(&user.token).sub;
    (user, id)
}

async fn get_user_with_header(api: &Api, value: &str) -> tests::Reply {
    api.send(
        api.request(Method::GET, "/user", None)
            .header(AUTHORIZATION, value),
    )
    .await
}

#[tokio::test]
async fn a_forged_token_with_the_stacks_key_is_accepted() {
    let api = Api::new();
    let (user, id) = projected_user(&api, "forged").await;
    let now = unix_now();

    let token = api
        .stack()
        .sign(&json!({"sub": id, "iat": now, "exp": now + 600}));

    let reply = api.get("/user", Some(&token)).await;
    assert_eq!(reply.expect(200)["user"]["username"], user.username);
    assert_eq!(reply.body["user"]["token"], token);
}

#[tokio::test]
async fn a_missing_or_other_scheme_header_is_401() {
    let api = Api::new();
    let (user, _) = projected_user(&api, "scheme").await;

    api.get("/user", None).await.expect_unauthorized();
    for value in [
        format!("Bearer {}", user.token),
        "Bearer x".to_owned(),
        user.token.clone(),
        "Token".to_owned(),
        "Token ".to_owned(),
        format!("Basic {}", base64url(b"user:password")),
    ] {
        let reply = get_user_with_header(&api, &value).await;
        assert_eq!(
            reply.status, 401,
            "{value:?} was accepted: {:#}",
            reply.body
        );
        reply.expect_unauthorized();
    }
    // The same token with the right scheme passes.
    get_user_with_header(&api, &format!("Token {}", user.token))
        .await
        .expect(200);
}

#[tokio::test]
async fn a_garbage_token_is_401() {
    let api = Api::new();
    for token in ["garbage", "a.b.c", "...", "eyJhbGciOiJIUzI1NiJ9.e30."] {
        let reply = api.get("/user", Some(token)).await;
        assert_eq!(reply.status, 401, "{token:?}: {:#}", reply.body);
        reply.expect_unauthorized();
    }
}

#[tokio::test]
async fn a_token_signed_with_another_key_is_401() {
    let api = Api::new();
    let (_, id) = projected_user(&api, "otherkey").await;
    let now = unix_now();
    let mut other_secret = vec![0_u8; 48];
    rand::rng().fill_bytes(&mut other_secret);

    let token = sign_with(
        &other_secret,
        &json!({"sub": id, "iat": now, "exp": now + 600}),
    );

    api.get("/user", Some(&token)).await.expect_unauthorized();
}

#[tokio::test]
async fn a_token_with_a_swapped_payload_is_401() {
    let api = Api::new();
    let (alice, _) = projected_user(&api, "alice").await;
    let (bob, _) = projected_user(&api, "bob").await;
    let alice_parts: Vec<&str> = alice.token.split('.').collect();
    let bob_parts: Vec<&str> = bob.token.split('.').collect();
    assert_eq!(alice_parts.len(), 3);

    // Alice's header and signature around Bob's claims.
    let tampered = format!("{}.{}.{}", alice_parts[0], bob_parts[1], alice_parts[2]);

    let reply = api.get("/user", Some(&tampered)).await;
    reply.expect_unauthorized();
    let reply = api.follow(&alice.username, Some(&tampered)).await;
    reply.expect_unauthorized();
}

#[tokio::test]
async fn an_alg_none_token_is_401() {
    let api = Api::new();
    let (user, id) = projected_user(&api, "algnone").await;
    let now = unix_now();
    let claims = base64url(
        json!({"sub": id, "iat": now, "exp": now + 600})
            .to_string()
            .as_bytes(),
    );
    let signature = user.token.rsplit('.').next().unwrap_or_default().to_owned();

    for header in [
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"None","typ":"JWT"}"#,
    ] {
        let header = base64url(header.as_bytes());
        for token in [
            format!("{header}.{claims}."),
            format!("{header}.{claims}.{signature}"),
        ] {
            let reply = api.get("/user", Some(&token)).await;
            assert_eq!(reply.status, 401, "{token:?}: {:#}", reply.body);
            reply.expect_unauthorized();
        }
    }
}

#[tokio::test]
async fn an_expired_token_is_401() {
    let api = Api::new();
    let (_, id) = projected_user(&api, "expired").await;
    let now = unix_now();

    let expired = api
        .stack()
        .sign(&json!({"sub": id, "iat": now - 7200, "exp": now - 60}));

    api.get("/user", Some(&expired)).await.expect_unauthorized();
    api.update_user(Some(&expired), &json!({"bio": "too late"}))
        .await
        .expect_unauthorized();
}

#[tokio::test]
async fn a_token_without_an_expiry_is_401() {
    let api = Api::new();
    let (_, id) = projected_user(&api, "noexp").await;

    let token = api.stack().sign(&json!({"sub": id, "iat": unix_now()}));

    api.get("/user", Some(&token)).await.expect_unauthorized();
}

#[tokio::test]
async fn an_invalid_token_is_401_even_where_a_token_is_optional() {
    let api = Api::new();
    let (user, _) = projected_user(&api, "optional").await;

    api.profile(&user.username, Some("garbage"))
        .await
        .expect_unauthorized();
    api.profile(&user.username, None).await.expect(200);
}
