//! The black-box test harness: one local stack per test binary, an HTTP client for its API, and
//! helpers to wait for the read models and to forge tokens.
//!
//! The stack's search read model is the embedded engine, except in a test binary whose name
//! ends in `_opensearch` (`tests/tests/api_opensearch/`): there it is the binary's own
//! OpenSearch node ([`local_aws::testkit::opensearch`]), so that the same test modules run
//! against the real engine.
//!
//! ```no_run
//! # async fn example() {
//! let api = tests::Api::new();
//! let alice = api.new_user("alice").await;
//! let reply = api.get("/user", Some(&alice.token)).await;
//! # let _ = reply;
//! # }
//! ```

use std::fmt::Debug;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::config::JwtSettings;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use local_stack::{SearchBackend, StackConfig};
use rand::RngCore;
use reqwest::header::{HeaderMap, AUTHORIZATION};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// How long a write may take to reach the read models before a test gives up. Generous: it is
/// only reached when something is broken, and a loaded machine must not fail the tests.
pub const CONSISTENCY_BOUND: Duration = Duration::from_secs(20);

/// How often [`eventually`] looks again.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// How long [`always`] watches a value that must not change any more (late duplicates would
/// show within it). Not a bound on anything the stack does.
pub const STABILITY_WINDOW: Duration = Duration::from_secs(2);

/// No slugs, for [`Api::eventually_listing`] of a list that must end up empty.
pub const NO_ARTICLES: &[&str] = &[];

/// Lifetime of the tokens the stack issues.
pub const TOKEN_TTL: Duration = Duration::from_secs(60 * 60);

/// The local stack this test binary runs, shared by all its tests.
#[derive(Debug)]
pub struct TestStack {
    api_url: String,
    /// Prefix of the stack's tables, topic and queues on the emulators.
    pub prefix: String,
    /// The key the stack signs tokens with, so that tests can forge tokens.
    pub jwt_secret: Vec<u8>,
    /// The engine of the search read model: embedded (in memory, or in a directory of its own
    /// after [`stack_with_search_on_disk`]) or OpenSearch (see the crate docs).
    pub search: SearchBackend,
}

static STACK: OnceLock<Result<TestStack, String>> = OnceLock::new();
static SEARCH_ON_DISK: AtomicBool = AtomicBool::new(false);

/// The stack of this test binary with its search indexes outside the process (in a directory
/// of their own, or on OpenSearch), so that another process (the `replay` binary) can build a
/// search version the stack then serves. Call it before anything else starts the stack (first
/// thing in every test of the binary).
pub fn stack_with_search_on_disk() -> &'static TestStack {
    SEARCH_ON_DISK.store(true, Ordering::SeqCst);
    let stack = stack();
    assert!(
        stack.search != SearchBackend::Embedded { dir: None },
        "the stack was started with its search in memory before stack_with_search_on_disk"
    );
    stack
}

/// Whether this test binary's stack runs its search on OpenSearch: its name (as cargo builds
/// it, `<target name>-<hash>`) ends in `_opensearch`.
fn binary_on_opensearch() -> bool {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            let stem = exe.file_stem()?.to_str()?.to_owned();
            let target = stem
                .rsplit_once('-')
                .map_or(stem.as_str(), |(name, _)| name);
            Some(target.ends_with("_opensearch"))
        })
        .unwrap_or(false)
}

/// The stack of this test binary, started on the first call (concurrent callers wait for it).
///
/// The stack runs on a dedicated thread that owns a multi-thread runtime and keeps it for the
/// rest of the process: each `#[tokio::test]` has its own runtime, which dies with the test,
/// and the stack must outlive every one of them. Panics (in every test alike) if the stack
/// cannot start.
pub fn stack() -> &'static TestStack {
    match STACK.get_or_init(start_stack) {
        Ok(stack) => stack,
        Err(e) => panic!("the local stack for the tests could not start: {e}"),
    }
}

fn start_stack() -> Result<TestStack, String> {
    let endpoints = local_aws::testkit::emulators().clone();
    let prefix = local_aws::testkit::unique_prefix("api");
    let mut jwt_secret = vec![0_u8; 48];
    rand::rng().fill_bytes(&mut jwt_secret);
    let jwt = JwtSettings::new(jwt_secret.clone(), TOKEN_TTL).map_err(|e| e.to_string())?;
    let search_dir = || {
        // In memory all the same where there is a tmpfs: every search write is a commit, and
        // a commit's fsync on a real disk makes a rebuild of the index ten times slower.
        let shm = std::path::Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let root = base.join("conduit-test-search");
        // Earlier runs' indexes (their tables died with their emulators): a day is plenty.
        for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(24 * 60 * 60));
            if stale {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        root.join(&prefix)
    };
    let search = if binary_on_opensearch() {
        SearchBackend::OpenSearch {
            url: local_aws::testkit::opensearch().to_owned(),
            sigv4: false,
        }
    } else {
        SearchBackend::Embedded {
            dir: SEARCH_ON_DISK.load(Ordering::SeqCst).then(search_dir),
        }
    };
    let config = StackConfig {
        endpoints,
        prefix: prefix.clone(),
        jwt,
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        retry_delay: Some(Duration::from_secs(1)),
        stream_poll_interval: Duration::from_millis(20),
        // Fresh tables every run, so an in-memory index matches them; on disk, a directory
        // as fresh as the prefix; on OpenSearch, indexes named after the prefix.
        search: search.clone(),
        api_meter: None,
        pipeline_meter: None,
    };

    let (started, result) = mpsc::channel::<Result<String, String>>();
    std::thread::Builder::new()
        .name("conduit-test-stack".to_owned())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = started.send(Err(format!("cannot build the stack's runtime: {e}")));
                    return;
                }
            };
            match runtime.block_on(local_stack::start(config)) {
                Ok(running) => {
                    let _ = started.send(Ok(running.api_url()));
                    // The stack's tasks belong to `running` and this runtime: keep both for
                    // the rest of the process.
                    runtime.block_on(std::future::pending::<()>());
                    drop(running);
                }
                Err(e) => {
                    let _ = started.send(Err(format!("{e:#}")));
                }
            }
        })
        .map_err(|e| format!("cannot spawn the stack's thread: {e}"))?;
    let api_url = result
        .recv()
        .map_err(|_| "the stack's thread died while starting".to_owned())??;
    Ok(TestStack {
        api_url,
        prefix,
        jwt_secret,
        search,
    })
}

impl TestStack {
    /// The full URL of an API path: `url("/users")` is `http://127.0.0.1:PORT/api/users`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api_url)
    }

    /// An HS256 token over `claims`, signed with the stack's own key.
    pub fn sign(&self, claims: &Value) -> String {
        sign_with(&self.jwt_secret, claims)
    }

    /// The claims of a token the stack issued, checked with the stack's key (HS256 only).
    pub fn verify(&self, token: &str) -> Claims {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        match jsonwebtoken::decode::<Claims>(
            token,
            &DecodingKey::from_secret(&self.jwt_secret),
            &validation,
        ) {
            Ok(data) => data.claims,
            Err(e) => panic!("token {token:?} does not verify with the stack's key: {e}"),
        }
    }
}

/// The claims of the tokens the API issues.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iat: u64,
    pub exp: u64,
}

/// An HS256 token over `claims` signed with `secret`.
pub fn sign_with(secret: &[u8], claims: &Value) -> String {
    match jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    ) {
        Ok(token) => token,
        Err(e) => panic!("cannot sign {claims}: {e}"),
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Unpadded base64url, as JWT segments are encoded.
pub fn base64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A name no other test (nor an earlier run) uses: `{tag}_{12 hex digits}`, a valid username.
pub fn unique_name(tag: &str) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{tag}_{}", &random[..12])
}

/// A title no other test uses, `"{words} {12 hex digits}"`, and the slug the API derives from
/// it while that slug is free: lower case, every space a `-`. `words` are ASCII words.
pub fn unique_title(words: &str) -> (String, String) {
    let id = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let title = format!("{words} {id}");
    let slug = title
        .to_ascii_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join("-");
    (title, slug)
}

/// An address no other test uses, derived from a unique name.
pub fn email_for(name: &str) -> String {
    format!("{name}@example.test")
}

/// Polls `check` every 50 ms until it answers `Ok`, and returns that value. Panics once `bound`
/// has passed, with the last `Err` it answered (what the test saw instead).
pub async fn eventually<T, E, F, Fut>(bound: Duration, mut check: F) -> T
where
    E: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let start = Instant::now();
    loop {
        let last = match check().await {
            Ok(value) => return value,
            Err(observed) => observed,
        };
        if start.elapsed() >= bound {
            panic!("still not as expected after {bound:?}; last observed: {last:#?}");
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Polls `check` every 50 ms for the whole of `window` and panics at the first `Err`: for what
/// must hold once it held (a count that must not overshoot when late duplicates arrive).
pub async fn always<E, F, Fut>(window: Duration, mut check: F)
where
    E: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let start = Instant::now();
    loop {
        if let Err(observed) = check().await {
            panic!(
                "stopped holding after {:?}; observed: {observed:#?}",
                start.elapsed()
            );
        }
        if start.elapsed() >= window {
            return;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Whether `value` is a timestamp as RealWorld writes them: `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn is_timestamp(value: &Value) -> bool {
    let Some(text) = value.as_str() else {
        return false;
    };
    let shape = b"dddd-dd-ddTdd:dd:dd.dddZ";
    text.len() == shape.len()
        && text.bytes().zip(shape).all(|(c, &s)| match s {
            b'd' => c.is_ascii_digit(),
            _ => c == s,
        })
}

/// The slug of an article object; panics when it has none.
#[track_caller]
pub fn slug_of(article: &Value) -> String {
    match article["slug"].as_str() {
        Some(slug) => slug.to_owned(),
        None => panic!("the article has no slug: {article:#}"),
    }
}

/// The slugs of a `{"articles": [...]}` body, in order.
pub fn slugs(list: &Value) -> Vec<String> {
    list["articles"]
        .as_array()
        .map(|articles| {
            articles
                .iter()
                .map(|a| a["slug"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// One HTTP answer: status, headers and the body (JSON when it parses, else a string).
#[derive(Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

/// Longest body a failure message shows.
const SHOWN_BODY_CHARS: usize = 2_000;

impl Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &format_args!("{}", self.shown_body()))
            .finish()
    }
}

impl Reply {
    /// The body as failure messages show it: JSON, cut after a couple of thousand characters.
    pub fn shown_body(&self) -> String {
        let text = self.body.to_string();
        match text.char_indices().nth(SHOWN_BODY_CHARS) {
            Some((cut, _)) => format!("{}... ({} characters)", &text[..cut], text.chars().count()),
            None => text,
        }
    }

    /// The header's value as text, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status and returns the body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.shown_body()
        );
        &self.body
    }

    /// Asserts a RealWorld error: this status and `{"errors": {...}}` naming `field`.
    #[track_caller]
    pub fn expect_error(&self, status: u16, field: &str) {
        self.expect(status);
        let messages = self.body["errors"][field].as_array();
        assert!(
            messages.is_some_and(|m| !m.is_empty() && m.iter().all(Value::is_string)),
            "expected errors.{field} to be a list of messages, got {}",
            self.shown_body()
        );
    }

    /// Asserts a 401 with `WWW-Authenticate: Token` and an `errors` body.
    #[track_caller]
    pub fn expect_unauthorized(&self) {
        self.expect(401);
        assert_eq!(self.header("www-authenticate"), Some("Token"), "{self:#?}");
        assert!(
            self.body["errors"]
                .as_object()
                .is_some_and(|e| !e.is_empty()),
            "a 401 carries an errors body: {}",
            self.shown_body()
        );
    }
}

/// A registered user, as a test knows it.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub username: String,
    pub email: String,
    pub password: String,
    pub token: String,
}

/// A client of the stack's API. Build one per test: its connections belong to the test's
/// runtime.
#[derive(Clone, Debug)]
pub struct Api {
    client: reqwest::Client,
    stack: &'static TestStack,
}

impl Default for Api {
    fn default() -> Self {
        Self::new()
    }
}

impl Api {
    /// A client of this binary's stack, starting it if needed.
    pub fn new() -> Self {
        let stack = stack();
        let client = match reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .no_proxy()
            .build()
        {
            Ok(client) => client,
            Err(e) => panic!("cannot build the HTTP client: {e}"),
        };
        Self { client, stack }
    }

    pub fn stack(&self) -> &'static TestStack {
        self.stack
    }

    /// A request to an API path with `Authorization: Token <token>` when a token is given, for
    /// tests that need an unusual header or body.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let request = self.client.request(method, self.stack.url(path));
        match token {
            Some(token) => request.header(AUTHORIZATION, format!("Token {token}")),
            None => request,
        }
    }

    /// Sends a request and reads the whole answer; panics only if there is no HTTP answer.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => panic!("no HTTP answer: {e}"),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let text = match response.text().await {
            Ok(text) => text,
            Err(e) => panic!("cannot read the body of a {status} answer: {e}"),
        };
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(self.request(Method::GET, path, token)).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.send(self.request(Method::POST, path, token).json(body))
            .await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.send(self.request(Method::PUT, path, token).json(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(self.request(Method::DELETE, path, token)).await
    }

    /// `POST /users` with the three fields, whatever the answer.
    pub async fn try_register(&self, username: &str, email: &str, password: &str) -> Reply {
        let body = json!({"user": {"username": username, "email": email, "password": password}});
        self.post("/users", None, &body).await
    }

    /// Registers a user, asserting the 201; returns the token and the `user` object.
    pub async fn register(&self, username: &str, email: &str, password: &str) -> (String, Value) {
        let reply = self.try_register(username, email, password).await;
        let user = reply.expect(201)["user"].clone();
        let token = match user["token"].as_str() {
            Some(token) => token.to_owned(),
            None => panic!("registration answered no token: {:#}", reply.body),
        };
        (token, user)
    }

    /// Registers a fresh user with a unique name built from `tag`.
    pub async fn new_user(&self, tag: &str) -> TestUser {
        let username = unique_name(tag);
        let email = email_for(&username);
        let password = format!("pw-{}", unique_name("secret"));
        let (token, _) = self.register(&username, &email, &password).await;
        TestUser {
            username,
            email,
            password,
            token,
        }
    }

    /// Registers `count` fresh users at once.
    pub async fn new_users(&self, tag: &str, count: usize) -> Vec<TestUser> {
        let registrations = (0..count).map(|_| {
            let api = self.clone();
            let tag = tag.to_owned();
            tokio::spawn(async move { api.new_user(&tag).await })
        });
        futures::future::join_all(registrations)
            .await
            .into_iter()
            .map(|joined| match joined {
                Ok(user) => user,
                Err(e) => panic!("a registration failed: {e}"),
            })
            .collect()
    }

    /// `POST /users/login`, whatever the answer.
    pub async fn login(&self, email: &str, password: &str) -> Reply {
        let body = json!({"user": {"email": email, "password": password}});
        self.post("/users/login", None, &body).await
    }

    /// `PUT /user` with `{"user": changes}`.
    pub async fn update_user(&self, token: Option<&str>, changes: &Value) -> Reply {
        self.put("/user", token, &json!({ "user": changes })).await
    }

    pub async fn profile(&self, username: &str, token: Option<&str>) -> Reply {
        self.get(&format!("/profiles/{username}"), token).await
    }

    pub async fn follow(&self, username: &str, token: Option<&str>) -> Reply {
        self.post(&format!("/profiles/{username}/follow"), token, &json!({}))
            .await
    }

    pub async fn unfollow(&self, username: &str, token: Option<&str>) -> Reply {
        self.delete(&format!("/profiles/{username}/follow"), token)
            .await
    }

    /// Polls `GET path` until `accept` holds for the answer (the read models catch up
    /// asynchronously) and returns that answer; panics with the last one after
    /// [`CONSISTENCY_BOUND`].
    pub async fn eventually_get(
        &self,
        path: &str,
        token: Option<&str>,
        accept: impl Fn(&Reply) -> bool,
    ) -> Reply {
        eventually(CONSISTENCY_BOUND, || async {
            let reply = self.get(path, token).await;
            if accept(&reply) {
                Ok(reply)
            } else {
                Err(reply)
            }
        })
        .await
    }

    /// Waits until `GET /user` answers 200 for this token with `accept` holding for `user`.
    pub async fn eventually_current_user(
        &self,
        token: &str,
        accept: impl Fn(&Value) -> bool,
    ) -> Value {
        self.eventually_get("/user", Some(token), |r| {
            r.status == StatusCode::OK && accept(&r.body["user"])
        })
        .await
        .body["user"]
            .clone()
    }

    /// Waits until `GET /profiles/{username}` answers 200 with `accept` holding for `profile`.
    pub async fn eventually_profile(
        &self,
        username: &str,
        token: Option<&str>,
        accept: impl Fn(&Value) -> bool,
    ) -> Value {
        self.eventually_get(&format!("/profiles/{username}"), token, |r| {
            r.status == StatusCode::OK && accept(&r.body["profile"])
        })
        .await
        .body["profile"]
            .clone()
    }

    /// `POST /articles` with `{"article": article}`, whatever the answer.
    pub async fn create_article(&self, token: Option<&str>, article: &Value) -> Reply {
        self.post("/articles", token, &json!({ "article": article }))
            .await
    }

    /// Publishes an article by `author` with this title and these tags, asserting the 201;
    /// returns the `article` object.
    pub async fn new_article(&self, author: &TestUser, title: &str, tags: &[&str]) -> Value {
        let article = json!({
            "title": title,
            "description": format!("About {title}"),
            "body": format!("All there is to say about {title}."),
            "tagList": tags,
        });
        self.create_article(Some(&author.token), &article)
            .await
            .expect(201)["article"]
            .clone()
    }

    pub async fn article(&self, slug: &str, token: Option<&str>) -> Reply {
        self.get(&format!("/articles/{slug}"), token).await
    }

    /// `PUT /articles/{slug}` with `{"article": changes}`.
    pub async fn update_article(&self, slug: &str, token: Option<&str>, changes: &Value) -> Reply {
        self.put(
            &format!("/articles/{slug}"),
            token,
            &json!({ "article": changes }),
        )
        .await
    }

    pub async fn delete_article(&self, slug: &str, token: Option<&str>) -> Reply {
        self.delete(&format!("/articles/{slug}"), token).await
    }

    /// `GET /articles?{query}`.
    pub async fn list_articles(&self, query: &str, token: Option<&str>) -> Reply {
        self.get(&format!("/articles?{query}"), token).await
    }

    /// `POST /articles/{slug}/comments` with this body, whatever the answer.
    pub async fn add_comment(&self, slug: &str, token: Option<&str>, body: &str) -> Reply {
        self.post(
            &format!("/articles/{slug}/comments"),
            token,
            &json!({"comment": {"body": body}}),
        )
        .await
    }

    pub async fn comments(&self, slug: &str, token: Option<&str>) -> Reply {
        self.get(&format!("/articles/{slug}/comments"), token).await
    }

    /// `DELETE /articles/{slug}/comments/{id}`; `id` is text so that tests can send non-numbers.
    pub async fn delete_comment(&self, slug: &str, id: &str, token: Option<&str>) -> Reply {
        self.delete(&format!("/articles/{slug}/comments/{id}"), token)
            .await
    }

    pub async fn favorite(&self, slug: &str, token: Option<&str>) -> Reply {
        self.post(&format!("/articles/{slug}/favorite"), token, &json!({}))
            .await
    }

    pub async fn unfavorite(&self, slug: &str, token: Option<&str>) -> Reply {
        self.delete(&format!("/articles/{slug}/favorite"), token)
            .await
    }

    /// Waits until `GET /articles/{slug}` answers 200 with `accept` holding for `article`.
    pub async fn eventually_article(
        &self,
        slug: &str,
        token: Option<&str>,
        accept: impl Fn(&Value) -> bool,
    ) -> Value {
        self.eventually_get(&format!("/articles/{slug}"), token, |r| {
            r.status == StatusCode::OK && accept(&r.body["article"])
        })
        .await
        .body["article"]
            .clone()
    }

    /// Waits until `GET /articles?{query}` answers 200 with exactly these slugs, in this order,
    /// and `articlesCount` equal to their number; returns the body.
    pub async fn eventually_listing<S: AsRef<str>>(
        &self,
        query: &str,
        token: Option<&str>,
        expected: &[S],
    ) -> Value {
        self.eventually_get(&format!("/articles?{query}"), token, |r| {
            r.status == StatusCode::OK
                && slugs(&r.body)
                    .iter()
                    .map(String::as_str)
                    .eq(expected.iter().map(AsRef::as_ref))
                && r.body["articlesCount"] == expected.len()
        })
        .await
        .body
    }

    /// Waits until `GET /articles/{slug}/comments` answers 200 with `accept` holding for the
    /// `comments` list.
    pub async fn eventually_comments(
        &self,
        slug: &str,
        token: Option<&str>,
        accept: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        self.eventually_get(&format!("/articles/{slug}/comments"), token, |r| {
            r.status == StatusCode::OK
                && r.body["comments"]
                    .as_array()
                    .is_some_and(|comments| accept(comments))
        })
        .await
        .body["comments"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `GET /tags` answers 200 with `accept` holding for the `tags` list.
    pub async fn eventually_tags(&self, accept: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        self.eventually_get("/tags", None, |r| {
            r.status == StatusCode::OK && r.body["tags"].as_array().is_some_and(|t| accept(t))
        })
        .await
        .body["tags"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn base64url_matches_known_vectors() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foob"), "Zm9vYg");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn timestamps_have_milliseconds_and_utc() {
        assert!(is_timestamp(&json!("2024-01-01T00:00:00.000Z")));
        assert!(!is_timestamp(&json!("2024-01-01T00:00:00Z")));
        assert!(!is_timestamp(&json!("2024-01-01T00:00:00.000+00:00")));
        assert!(!is_timestamp(&json!("2024-01-01 00:00:00.000Z")));
        assert!(!is_timestamp(&json!(1)));
    }

    #[test]
    fn unique_titles_come_with_their_slug() {
        let (title, slug) = unique_title("How to Train  Dragons");
        assert!(title.starts_with("How to Train  Dragons "));
        assert_eq!(
            slug,
            title
                .to_ascii_lowercase()
                .replace("  ", " ")
                .replace(' ', "-")
        );
        assert_ne!(unique_title("x").0, unique_title("x").0);
    }

    #[test]
    fn unique_names_are_valid_usernames_and_differ() {
        let a = unique_name("alice");
        let b = unique_name("alice");
        assert_ne!(a, b);
        assert!(a.len() <= 64);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')));
    }
}
