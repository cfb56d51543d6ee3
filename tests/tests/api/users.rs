//! `POST /users`, `POST /users/login`, `GET /user` and `PUT /user`.

use futures::future::join_all;
use reqwest::header::CONTENT_TYPE;
use reqwest::Method;
use serde_json::{json, Value};
use tests::{email_for, unique_name, unix_now, Api, TOKEN_TTL};

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    keys
}

// ---------------------------------------------------------------------------------------------
// POST /users
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn register_answers_201_with_the_user_and_a_token_signed_by_the_stack() {
    let api = Api::new();
    let username = unique_name("reg");
    let email = email_for(&username);

    let reply = api.try_register(&username, &email, "s3cret pass").await;

    let body = reply.expect(201);
    assert_eq!(keys(body), ["user"], "{body:#}");
    let user = &body["user"];
    assert_eq!(
        keys(user),
        ["bio", "email", "image", "token", "username"],
        "{user:#}"
    );
    assert_eq!(user["email"], email);
    assert_eq!(user["username"], username);
    assert_eq!(user["bio"], "");
    assert_eq!(user["image"], "");
    let token = user["token"].as_str().expect("token is a string");
    let claims = api.stack().verify(token);
    assert!(!claims.sub.is_empty());
    assert_eq!(claims.exp - claims.iat, TOKEN_TTL.as_secs());
    assert!(claims.iat.abs_diff(unix_now()) < 120, "{claims:?}");
    assert!(reply
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json")));
}

#[tokio::test]
async fn register_lower_cases_the_email() {
    let api = Api::new();
    let username = unique_name("case");
    let email = email_for(&username);

    let (_, user) = api
        .register(&username, &email.to_uppercase(), "password")
        .await;

    assert_eq!(user["email"], email);
}

#[tokio::test]
async fn register_accepts_the_longest_username_and_password() {
    let api = Api::new();
    let username = format!("{}{}", unique_name("long"), "x".repeat(64))
        .chars()
        .take(64)
        .collect::<String>();
    let email = email_for(&unique_name("long"));

    let (_, user) = api.register(&username, &email, &"p".repeat(256)).await;

    assert_eq!(user["username"], username);
}

#[tokio::test]
async fn register_without_a_field_names_the_missing_field() {
    let api = Api::new();
    let name = unique_name("missing");
    let email = email_for(&name);
    let cases = [
        ("username", json!({"email": email, "password": "password"})),
        ("email", json!({"username": name, "password": "password"})),
        ("password", json!({"username": name, "email": email})),
    ];
    for (field, user) in cases {
        let reply = api.post("/users", None, &json!({ "user": user })).await;
        reply.expect_error(422, field);
        assert_eq!(keys(&reply.body["errors"]), [field], "{:#}", reply.body);
    }

    let reply = api.post("/users", None, &json!({"user": {}})).await;
    reply.expect(422);
    assert_eq!(
        keys(&reply.body["errors"]),
        ["email", "password", "username"],
        "every missing field is reported at once: {:#}",
        reply.body
    );
}

#[tokio::test]
async fn register_with_a_blank_field_names_the_blank_field() {
    let api = Api::new();
    let name = unique_name("blank");
    let email = email_for(&name);
    for blank in ["", "   "] {
        api.try_register(blank, &email, "password")
            .await
            .expect_error(422, "username");
        api.try_register(&name, blank, "password")
            .await
            .expect_error(422, "email");
    }
    api.try_register(&name, &email, "")
        .await
        .expect_error(422, "password");
    // Nothing above registered anyone: the name and address are still free.
    api.register(&name, &email, "password").await;
}

#[tokio::test]
async fn register_refuses_invalid_emails() {
    let api = Api::new();
    let name = unique_name("bademail");
    for email in [
        "not-an-email",
        "@example.test",
        "someone@",
        "someone@localhost",
        "two@at@example.test",
        "with space@example.test",
        "dot@.example.test",
    ] {
        let reply = api.try_register(&name, email, "password").await;
        assert_eq!(
            reply.status, 422,
            "{email:?} was accepted: {:#}",
            reply.body
        );
        reply.expect_error(422, "email");
    }
}

#[tokio::test]
async fn register_refuses_invalid_usernames_and_passwords() {
    let api = Api::new();
    let name = unique_name("baduser");
    let email = email_for(&name);
    for username in ["has space", "slash/name", "semi;colon", &"u".repeat(65)] {
        let reply = api.try_register(username, &email, "password").await;
        assert_eq!(
            reply.status, 422,
            "{username:?} was accepted: {:#}",
            reply.body
        );
        reply.expect_error(422, "username");
    }
    api.try_register(&name, &email, &"p".repeat(257))
        .await
        .expect_error(422, "password");
}

#[tokio::test]
async fn register_refuses_a_taken_email_in_any_case() {
    let api = Api::new();
    let first = api.new_user("first").await;
    let other = unique_name("second");

    api.try_register(&other, &first.email, "password")
        .await
        .expect_error(422, "email");
    let reply = api
        .try_register(&other, &first.email.to_uppercase(), "password")
        .await;
    reply.expect_error(422, "email");
    assert_eq!(
        reply.body["errors"]["email"],
        json!(["has already been taken"])
    );

    // The refused registrations claimed nothing: `other` is still free.
    api.register(&other, &email_for(&other), "password").await;
}

#[tokio::test]
async fn register_refuses_a_taken_username() {
    let api = Api::new();
    let first = api.new_user("taken").await;

    let reply = api
        .try_register(
            &first.username,
            &email_for(&unique_name("other")),
            "password",
        )
        .await;

    reply.expect_error(422, "username");
    assert_eq!(
        reply.body["errors"]["username"],
        json!(["has already been taken"])
    );
}

#[tokio::test]
async fn register_answers_400_to_malformed_json() {
    let api = Api::new();
    for raw in [
        r#"{"user": {"username": "x""#,
        "not json",
        "",
        r#"{"user": }"#,
    ] {
        let reply = api
            .send(
                api.request(Method::POST, "/users", None)
                    .header(CONTENT_TYPE, "application/json")
                    .body(raw),
            )
            .await;
        assert!(
            !reply.status.is_server_error(),
            "{raw:?} answered {}: {:#}",
            reply.status,
            reply.body
        );
        reply.expect_error(400, "body");
    }
}

#[tokio::test]
async fn register_answers_422_to_json_of_the_wrong_shape() {
    let api = Api::new();
    for body in [
        json!({"user": 5}),
        json!([]),
        json!({"username": "x", "email": "x@example.test", "password": "p"}),
        json!({"user": {"username": 5, "email": "x@example.test", "password": "p"}}),
        json!({"user": {"username": "x", "email": ["x@example.test"], "password": "p"}}),
    ] {
        let reply = api.post("/users", None, &body).await;
        assert_eq!(
            reply.status, 422,
            "{body} answered {}: {:#}",
            reply.status, reply.body
        );
        assert!(reply.body["errors"].is_object(), "{:#}", reply.body);
    }
}

#[tokio::test]
async fn register_answers_415_without_a_json_content_type() {
    let api = Api::new();
    let name = unique_name("ctype");
    let body =
        json!({"user": {"username": name, "email": email_for(&name), "password": "p"}}).to_string();

    let reply = api
        .send(api.request(Method::POST, "/users", None).body(body.clone()))
        .await;
    reply.expect_error(415, "body");

    let reply = api
        .send(
            api.request(Method::POST, "/users", None)
                .header(CONTENT_TYPE, "text/plain")
                .body(body),
        )
        .await;
    reply.expect_error(415, "body");

    // Neither attempt registered the user.
    api.register(&name, &email_for(&name), "p").await;
}

#[tokio::test]
async fn concurrent_registrations_of_one_email_let_exactly_one_through() {
    let api = Api::new();
    let email = email_for(&unique_name("race"));

    let replies = join_all((0..8).map(|i| {
        let api = api.clone();
        let email = email.clone();
        // Half of them spell the address in capitals: it is the same address.
        let email = if i % 2 == 0 {
            email.to_uppercase()
        } else {
            email
        };
        tokio::spawn(async move {
            api.try_register(&unique_name(&format!("race{i}")), &email, "password")
                .await
        })
    }))
    .await;

    let replies: Vec<_> = replies.into_iter().map(|r| r.expect("task")).collect();
    let created = replies.iter().filter(|r| r.status == 201).count();
    assert_eq!(created, 1, "{replies:#?}");
    for reply in replies.iter().filter(|r| r.status != 201) {
        reply.expect_error(422, "email");
    }
}

#[tokio::test]
async fn concurrent_registrations_of_one_username_let_exactly_one_through() {
    let api = Api::new();
    let username = unique_name("raceuser");

    let replies = join_all((0..8).map(|_| {
        let api = api.clone();
        let username = username.clone();
        tokio::spawn(async move {
            api.try_register(&username, &email_for(&unique_name("raceu")), "password")
                .await
        })
    }))
    .await;

    let replies: Vec<_> = replies.into_iter().map(|r| r.expect("task")).collect();
    let created = replies.iter().filter(|r| r.status == 201).count();
    assert_eq!(created, 1, "{replies:#?}");
    for reply in replies.iter().filter(|r| r.status != 201) {
        reply.expect_error(422, "username");
    }
}

// ---------------------------------------------------------------------------------------------
// POST /users/login
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn login_right_after_registering_answers_a_working_token() {
    let api = Api::new();
    let user = api.new_user("login").await;

    // No waiting: logging in reads the write side.
    let reply = api.login(&user.email, &user.password).await;

    let body = reply.expect(200);
    let logged_in = &body["user"];
    assert_eq!(
        keys(logged_in),
        ["bio", "email", "image", "token", "username"],
        "{body:#}"
    );
    assert_eq!(logged_in["email"], user.email);
    assert_eq!(logged_in["username"], user.username);
    assert_eq!(logged_in["bio"], "");
    assert_eq!(logged_in["image"], "");
    let token = logged_in["token"].as_str().expect("token").to_owned();
    assert_eq!(
        api.stack().verify(&token).sub,
        api.stack().verify(&user.token).sub,
        "the login token names the registered user"
    );

    // The token works on the write side at once, and on the read side once it has caught up.
    api.update_user(Some(&token), &json!({"bio": "logged in"}))
        .await
        .expect(200);
    let current = api
        .eventually_current_user(&token, |u| u["bio"] == "logged in")
        .await;
    assert_eq!(current["username"], user.username);
    assert_eq!(current["token"], token);
}

#[tokio::test]
async fn login_compares_emails_case_insensitively() {
    let api = Api::new();
    let user = api.new_user("logincase").await;

    let reply = api.login(&user.email.to_uppercase(), &user.password).await;

    assert_eq!(reply.expect(200)["user"]["username"], user.username);
}

#[tokio::test]
async fn login_with_a_wrong_password_or_unknown_email_is_401() {
    let api = Api::new();
    let user = api.new_user("wrongpw").await;

    let wrong_password = api.login(&user.email, "not the password").await;
    wrong_password.expect_unauthorized();
    assert!(wrong_password.body["user"].is_null());

    let unknown = api
        .login(&email_for(&unique_name("nobody")), &user.password)
        .await;
    unknown.expect_unauthorized();
    assert_eq!(
        unknown.body, wrong_password.body,
        "an unknown email and a wrong password answer alike"
    );

    let case_of_password = api.login(&user.email, &user.password.to_uppercase()).await;
    case_of_password.expect_unauthorized();
}

#[tokio::test]
async fn login_with_blank_fields_is_422() {
    let api = Api::new();
    api.login("", "password").await.expect_error(422, "email");
    api.login("   ", "password")
        .await
        .expect_error(422, "email");
    api.login("someone@example.test", "")
        .await
        .expect_error(422, "password");
    let reply = api.post("/users/login", None, &json!({"user": {}})).await;
    reply.expect(422);
    assert_eq!(
        keys(&reply.body["errors"]),
        ["email", "password"],
        "{:#}",
        reply.body
    );
    api.post("/users/login", None, &json!({"user": "x"}))
        .await
        .expect(422);
}

// ---------------------------------------------------------------------------------------------
// GET /user (tokens in depth: see `auth`)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn current_user_answers_the_user_and_echoes_the_token() {
    let api = Api::new();
    let user = api.new_user("current").await;

    let reply = api
        .eventually_get("/user", Some(&user.token), |r| r.status == 200)
        .await;

    let body = &reply.body;
    assert_eq!(keys(body), ["user"], "{body:#}");
    assert_eq!(
        body["user"],
        json!({
            "email": user.email,
            "token": user.token,
            "username": user.username,
            "bio": "",
            "image": "",
        })
    );
}

#[tokio::test]
async fn current_user_without_a_token_is_401() {
    let api = Api::new();
    api.get("/user", None).await.expect_unauthorized();
}

// ---------------------------------------------------------------------------------------------
// PUT /user
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn update_bio_and_image_shows_everywhere() {
    let api = Api::new();
    let user = api.new_user("bio").await;
    let image = "https://images.example.test/me.png";

    let reply = api
        .update_user(
            Some(&user.token),
            &json!({"bio": "I like tests", "image": image}),
        )
        .await;

    assert_eq!(
        reply.expect(200)["user"],
        json!({
            "email": user.email,
            "token": user.token,
            "username": user.username,
            "bio": "I like tests",
            "image": image,
        })
    );
    api.eventually_current_user(&user.token, |u| {
        u["bio"] == "I like tests" && u["image"] == image
    })
    .await;
    let profile = api
        .eventually_profile(&user.username, None, |p| p["bio"] == "I like tests")
        .await;
    assert_eq!(
        profile,
        json!({"username": user.username, "bio": "I like tests", "image": image, "following": false})
    );

    // Changing one field keeps the other.
    let reply = api
        .update_user(Some(&user.token), &json!({"bio": "changed"}))
        .await;
    assert_eq!(reply.expect(200)["user"]["image"], image);
    api.eventually_current_user(&user.token, |u| {
        u["bio"] == "changed" && u["image"] == image
    })
    .await;
}

#[tokio::test]
async fn update_email_and_username_moves_login_and_profile() {
    let api = Api::new();
    let user = api.new_user("mover").await;
    // The old profile is visible before the change, so its 404 later means something.
    api.eventually_profile(&user.username, None, |_| true).await;
    let new_name = unique_name("moved");
    let new_email = email_for(&new_name);

    let reply = api
        .update_user(
            Some(&user.token),
            &json!({"email": new_email.to_uppercase(), "username": new_name}),
        )
        .await;

    let updated = &reply.expect(200)["user"];
    assert_eq!(updated["email"], new_email, "the new email is lower-cased");
    assert_eq!(updated["username"], new_name);
    assert_eq!(updated["token"], user.token);

    // The write side knows at once.
    let login = api.login(&new_email, &user.password).await;
    assert_eq!(login.expect(200)["user"]["username"], new_name);
    api.login(&user.email, &user.password)
        .await
        .expect_unauthorized();

    // The read side catches up.
    api.eventually_get(&format!("/profiles/{}", user.username), None, |r| {
        r.status == 404
    })
    .await
    .expect_error(404, "profile");
    api.eventually_profile(&new_name, None, |_| true).await;
    api.eventually_current_user(&user.token, |u| {
        u["email"] == new_email && u["username"] == new_name
    })
    .await;

    // The old email and username were released.
    api.register(&user.username, &user.email, "password").await;
}

#[tokio::test]
async fn update_with_the_unchanged_email_and_username_is_accepted() {
    // Clients (the RealWorld front end among them) send every field of the settings form.
    let api = Api::new();
    let user = api.new_user("same").await;

    let reply = api
        .update_user(
            Some(&user.token),
            &json!({"email": user.email, "username": user.username, "bio": "same old me", "image": ""}),
        )
        .await;

    let updated = &reply.expect(200)["user"];
    assert_eq!(updated["email"], user.email);
    assert_eq!(updated["username"], user.username);
    assert_eq!(updated["bio"], "same old me");
    api.login(&user.email, &user.password).await.expect(200);
}

#[tokio::test]
async fn update_to_another_users_email_or_username_is_422() {
    let api = Api::new();
    let user = api.new_user("grabber").await;
    let other = api.new_user("owner").await;

    api.update_user(Some(&user.token), &json!({"email": other.email}))
        .await
        .expect_error(422, "email");
    api.update_user(
        Some(&user.token),
        &json!({"email": other.email.to_uppercase()}),
    )
    .await
    .expect_error(422, "email");
    let reply = api
        .update_user(Some(&user.token), &json!({"username": other.username}))
        .await;
    reply.expect_error(422, "username");
    assert_eq!(
        reply.body["errors"]["username"],
        json!(["has already been taken"])
    );

    // Nothing changed for either of them.
    api.login(&user.email, &user.password).await.expect(200);
    api.login(&other.email, &other.password).await.expect(200);
}

#[tokio::test]
async fn update_with_invalid_fields_is_422() {
    let api = Api::new();
    let user = api.new_user("invalid").await;

    // No field at all is valid, and changes nothing.
    let unchanged = api.update_user(Some(&user.token), &json!({})).await;
    assert_eq!(
        unchanged.expect(200)["user"]["username"],
        json!(user.username)
    );
    assert_eq!(unchanged.body["user"]["email"], json!(user.email));
    api.put("/user", Some(&user.token), &json!({"user": null}))
        .await
        .expect(422);
    api.put("/user", Some(&user.token), &json!({"bio": "no envelope"}))
        .await
        .expect(422);
    api.update_user(Some(&user.token), &json!({"email": "not-an-email"}))
        .await
        .expect_error(422, "email");
    api.update_user(Some(&user.token), &json!({"username": "has space"}))
        .await
        .expect_error(422, "username");
    api.update_user(Some(&user.token), &json!({"password": ""}))
        .await
        .expect_error(422, "password");
    api.update_user(Some(&user.token), &json!({"bio": 5}))
        .await
        .expect(422);
    let malformed = api
        .send(
            api.request(Method::PUT, "/user", Some(&user.token))
                .header(CONTENT_TYPE, "application/json")
                .body("{"),
        )
        .await;
    malformed.expect_error(400, "body");

    // The refused changes left the user as it was.
    api.login(&user.email, &user.password).await.expect(200);
}

#[tokio::test]
async fn update_without_a_token_is_401() {
    let api = Api::new();
    api.update_user(None, &json!({"bio": "anonymous"}))
        .await
        .expect_unauthorized();
}

#[tokio::test]
async fn update_password_replaces_the_old_one() {
    let api = Api::new();
    let user = api.new_user("pw").await;

    let reply = api
        .update_user(
            Some(&user.token),
            &json!({"password": "brand new password"}),
        )
        .await;

    let body = reply.expect(200);
    assert!(body["user"].get("password").is_none(), "{body:#}");
    api.login(&user.email, &user.password)
        .await
        .expect_unauthorized();
    api.login(&user.email, "brand new password")
        .await
        .expect(200);
    // The token issued before the change still holds until it expires.
    api.update_user(Some(&user.token), &json!({"bio": "still me"}))
        .await
        .expect(200);
}
