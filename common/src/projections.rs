//! The projections (read models), their versions and the positions a reader can wait for.
//!
//! Every projection has a version, 1 until a replay builds another one side by side. Version 1
//! uses the plain table names; version `n > 1` suffixes each of the projection's own tables with
//! `-v<n>` and keeps its checkpoints in a table of its own, `<prefix>checkpoints-<name>-v<n>`, so
//! that removing an old version is dropping its tables. Which version the query side reads is
//! the registry item `projection#<name>` in the base checkpoints table (absent: version 1).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::config::TableNames;

/// One read model and the projector that builds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Projection {
    /// `users`, `follows`: users and profiles.
    Users,
    /// `articles`, `article-bodies`, `comments`, `favorites`.
    Articles,
    /// `feeds`, `feed-articles`, `feed-followers`: every reader's personal feed.
    Feed,
    /// The search index (OpenSearch, or the embedded engine locally): lists and tags.
    Search,
}

impl Projection {
    pub const ALL: [Projection; 4] = [
        Projection::Users,
        Projection::Articles,
        Projection::Feed,
        Projection::Search,
    ];

    /// The projector's name, as used in its checkpoint keys.
    pub fn name(self) -> &'static str {
        match self {
            Projection::Users => "users",
            Projection::Articles => "articles",
            Projection::Feed => "feed",
            Projection::Search => "search",
        }
    }

    /// The aggregate types whose events this projection applies.
    pub fn aggregate_types(self) -> &'static [&'static str] {
        match self {
            Projection::Users => &["User"],
            Projection::Articles => &["Article", "ArticleComments", "Favorite"],
            Projection::Feed => &["User", "Article"],
            Projection::Search => &["Article"],
        }
    }

    pub fn accepts(self, aggregate_type: &str) -> bool {
        self.aggregate_types().contains(&aggregate_type)
    }

    /// The projection's own DynamoDB tables (without its checkpoints table) in `tables`.
    pub fn tables(self, tables: &TableNames) -> Vec<String> {
        match self {
            Projection::Users => vec![tables.users.clone(), tables.follows.clone()],
            Projection::Articles => vec![
                tables.articles.clone(),
                tables.article_bodies.clone(),
                tables.comments.clone(),
                tables.favorites.clone(),
            ],
            Projection::Feed => vec![
                tables.feeds.clone(),
                tables.feed_articles.clone(),
                tables.feed_followers.clone(),
            ],
            Projection::Search => Vec::new(),
        }
    }

    /// The rounds of a bulk full pass: each round folds the events of its aggregate types and
    /// writes its own tables ([`Projection::round_tables`]); a round reads the tables of the
    /// rounds before it as they were left (they are done) and sees the tables of the rounds
    /// after it empty. Every table a round writes is written by it alone, and each item of it
    /// by one stream's fold, so the units of a round (scan segments) are independent and a
    /// unit done again writes the same items. The order is one the live path could have taken
    /// (it converges whatever the order of aggregates). The one exception, a counter of an
    /// earlier round's item that many streams move (an article's favorites), is added up
    /// apart and merged after the rounds.
    pub fn rounds(self) -> &'static [&'static [&'static str]] {
        match self {
            Projection::Users => &[&["User"]],
            // Articles first: comments and favorites read whether their article is deleted.
            Projection::Articles => &[&["Article"], &["ArticleComments", "Favorite"]],
            // Articles first: a follow copies the author's articles into the follower's feed.
            Projection::Feed => &[&["Article"], &["User"]],
            Projection::Search => &[&["Article"]],
        }
    }

    /// The tables round `round` (from 0) of [`Projection::rounds`] writes.
    pub fn round_tables(self, round: usize, tables: &TableNames) -> Vec<String> {
        let names: Vec<&String> = match (self, round) {
            (Projection::Users, 0) => vec![&tables.users, &tables.follows],
            (Projection::Articles, 0) => vec![&tables.articles, &tables.article_bodies],
            (Projection::Articles, 1) => vec![&tables.comments, &tables.favorites],
            (Projection::Feed, 0) => vec![&tables.feed_articles],
            (Projection::Feed, 1) => vec![&tables.feed_followers, &tables.feeds],
            _ => Vec::new(),
        };
        names.into_iter().cloned().collect()
    }

    /// The projections a write that appended events of `aggregate_type` waits for before it
    /// answers: every one that applies them, but the feed for `Article` events. The writer's
    /// own next reads show those read models (a follow, a `User` event, puts the author's
    /// articles into the follower's own feed: a copy bounded by one author's articles). An
    /// article's feed effect is a fan-out into every follower's feed (10,000 puts for an author
    /// with 10,000 followers): other users' feeds follow once it is done.
    pub fn awaited_by_writes_of(aggregate_type: &str) -> impl Iterator<Item = Projection> + '_ {
        Projection::ALL.into_iter().filter(move |projection| {
            projection.accepts(aggregate_type)
                && !(*projection == Projection::Feed && aggregate_type == "Article")
        })
    }

    /// The key of this projection's registry item in the base checkpoints table.
    pub fn registry_key(self) -> String {
        format!("projection#{}", self.name())
    }
}

impl fmt::Display for Projection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Projection {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Projection::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                format!("unknown projection {s:?}: expected one of users, articles, feed, search")
            })
    }
}

/// The checkpoints a projector keeps, one item per aggregate stream it applies, in the
/// checkpoints table of the projection's version (where the registry items live too).
pub mod checkpoints {
    pub use schema::checkpoints::{LAST_SEQ, PK};

    /// The checkpoint key of `projector` for one aggregate stream.
    pub fn key(projector: &str, stream_key: &str) -> String {
        format!("{projector}#{stream_key}")
    }
}

/// `base` at `version`: unchanged for version 1, else `<base>-v<version>`.
pub fn versioned(base: &str, version: u32) -> String {
    if version <= 1 {
        base.to_owned()
    } else {
        format!("{base}-v{version}")
    }
}

/// The concrete search index of a version: `<prefix>articles-v<version>` (version 1 included:
/// readers go through the alias `<prefix>articles`).
pub fn search_index(prefix: &str, version: u32) -> String {
    format!("{prefix}articles-v{}", version.max(1))
}

impl TableNames {
    /// These names with `projection`'s own tables and its checkpoints table at `version`.
    pub fn at_version(&self, projection: Projection, version: u32) -> TableNames {
        let mut t = self.clone();
        if version <= 1 {
            return t;
        }
        let v = |name: &str| versioned(name, version);
        match projection {
            Projection::Users => {
                t.users = v(&self.users);
                t.follows = v(&self.follows);
            }
            Projection::Articles => {
                t.articles = v(&self.articles);
                t.article_bodies = v(&self.article_bodies);
                t.comments = v(&self.comments);
                t.favorites = v(&self.favorites);
            }
            Projection::Feed => {
                t.feeds = v(&self.feeds);
                t.feed_articles = v(&self.feed_articles);
                t.feed_followers = v(&self.feed_followers);
            }
            Projection::Search => {}
        }
        t.checkpoints = format!("{}-{}-v{version}", self.checkpoints, projection.name());
        t
    }
}

/// The registry state of one projection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionState {
    /// The version the query side reads and the live projector writes.
    pub active: u32,
    /// A version being rebuilt by a replay, if any.
    pub building: Option<u32>,
    /// Set while a replay switches versions: the live projector applies nothing (its messages
    /// come back later), so the final catch-up of the new version misses nothing.
    pub frozen: bool,
    /// Every version whose tables exist (the active one included).
    pub versions: Vec<u32>,
}

impl Default for VersionState {
    fn default() -> Self {
        Self {
            active: 1,
            building: None,
            frozen: false,
            versions: vec![1],
        }
    }
}

/// Registry attribute names.
pub use schema::checkpoints::registry;

impl VersionState {
    pub fn from_item(item: &HashMap<String, AttributeValue>) -> Self {
        let number = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<u32>().ok())
        };
        let mut versions: Vec<u32> = item
            .get(registry::VERSIONS)
            .and_then(|v| v.as_ns().ok())
            .map(|ns| ns.iter().filter_map(|n| n.parse().ok()).collect())
            .unwrap_or_default();
        let active = number(registry::ACTIVE).unwrap_or(1);
        if !versions.contains(&active) {
            versions.push(active);
        }
        versions.sort_unstable();
        Self {
            active,
            building: number(registry::BUILDING),
            frozen: item
                .get(registry::FROZEN)
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
            versions,
        }
    }
}

/// `projection`'s registry item in the base checkpoints table, read strongly consistently
/// (empty when absent: version 1).
pub async fn read_registry_item(
    client: &Client,
    base_checkpoints_table: &str,
    projection: Projection,
) -> Result<HashMap<String, AttributeValue>, String> {
    let output = client
        .get_item()
        .table_name(base_checkpoints_table)
        .key(
            checkpoints::PK,
            AttributeValue::S(projection.registry_key()),
        )
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| {
            format!(
                "reading the version of projection {projection}: {}",
                crate::error::one_line(&e)
            )
        })?;
    Ok(output.item.unwrap_or_default())
}

/// Reads `projection`'s registry item from the base checkpoints table (strongly consistent).
pub async fn read_state(
    client: &Client,
    base_checkpoints_table: &str,
    projection: Projection,
) -> Result<VersionState, String> {
    let item = read_registry_item(client, base_checkpoints_table, projection).await?;
    Ok(VersionState::from_item(&item))
}

/// How long the query side trusts the active versions it read.
pub const DEFAULT_VERSION_TTL: Duration = Duration::from_secs(1);

/// The active version of every projection, as the query side sees it: read from the registry at
/// most once per `ttl`, shared by every request of the process.
#[derive(Clone, Debug)]
pub struct ActiveVersions {
    client: Client,
    base: TableNames,
    ttl: Duration,
    cached: Arc<Mutex<Option<Cached>>>,
}

/// When the versions were read, and what they were.
type Cached = (Instant, [u32; 4]);

impl ActiveVersions {
    pub fn new(client: Client, base: TableNames, ttl: Duration) -> Self {
        Self {
            client,
            base,
            ttl,
            cached: Arc::new(Mutex::new(None)),
        }
    }

    /// The same registry, trusted for `ttl` (a new, empty cache).
    pub fn with_ttl(&self, ttl: Duration) -> Self {
        Self::new(self.client.clone(), self.base.clone(), ttl)
    }

    /// The base (version 1) table names.
    pub fn base(&self) -> &TableNames {
        &self.base
    }

    /// The active version of each projection, in the order of [`Projection::ALL`].
    pub async fn versions(&self) -> Result<[u32; 4], String> {
        if let Some((at, versions)) = *self.cached.lock().unwrap_or_else(|e| e.into_inner()) {
            if at.elapsed() < self.ttl {
                return Ok(versions);
            }
        }
        let states = futures::future::join_all(
            Projection::ALL.map(|p| read_state(&self.client, &self.base.checkpoints, p)),
        )
        .await;
        let mut versions = [1; 4];
        for (slot, state) in versions.iter_mut().zip(states) {
            *slot = state?.active;
        }
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), versions));
        Ok(versions)
    }

    /// The active version of `projection`.
    pub async fn version(&self, projection: Projection) -> Result<u32, String> {
        let versions = self.versions().await?;
        let index = Projection::ALL
            .iter()
            .position(|p| *p == projection)
            .unwrap_or(0);
        Ok(versions[index])
    }

    /// The table names with every projection at its active version. The checkpoints table is
    /// left at the base: ask [`Self::checkpoints_table`] for one projection's checkpoints.
    pub async fn tables(&self) -> Result<TableNames, String> {
        let versions = self.versions().await?;
        let mut tables = self.base.clone();
        for (projection, version) in Projection::ALL.into_iter().zip(versions) {
            let at = self.base.at_version(projection, version);
            match projection {
                Projection::Users => {
                    tables.users = at.users;
                    tables.follows = at.follows;
                }
                Projection::Articles => {
                    tables.articles = at.articles;
                    tables.article_bodies = at.article_bodies;
                    tables.comments = at.comments;
                    tables.favorites = at.favorites;
                }
                Projection::Feed => {
                    tables.feeds = at.feeds;
                    tables.feed_articles = at.feed_articles;
                    tables.feed_followers = at.feed_followers;
                }
                Projection::Search => {}
            }
        }
        Ok(tables)
    }

    /// The checkpoints table of `projection`'s active version.
    pub async fn checkpoints_table(&self, projection: Projection) -> Result<String, String> {
        let version = self.version(projection).await?;
        Ok(self.base.at_version(projection, version).checkpoints)
    }
}

pub use schema::headers::{
    BEHIND_HEADER, CONSISTENCY_HEADER, MIN_POSITION_HEADER, POSITION_HEADER,
};

/// A point in one aggregate's stream: `<AggregateType>#<aggregateId>@<sequence>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Position {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: u64,
}

impl Position {
    /// The aggregate's stream key, as in the events table and checkpoint keys.
    pub fn stream_key(&self) -> String {
        format!("{}#{}", self.aggregate_type, self.aggregate_id)
    }

    /// Every position of a comma-separated header value (spaces or tabs around the commas);
    /// `Err` names what is wrong. The grammar is the `pattern` of `conduit-min-position` in the
    /// OpenAPI document, exactly: what it allows parses, what it does not is refused.
    pub fn parse_list(value: &str) -> Result<Vec<Position>, String> {
        if value.trim_matches([' ', '\t']).is_empty() {
            return Err("no position given".into());
        }
        if value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']) {
            return Err("spaces or tabs around the list".into());
        }
        let positions: Vec<Position> = value
            .split(',')
            .map(|p| p.trim_matches([' ', '\t']))
            .map(|p| match p {
                "" => Err("an empty position in the list".to_owned()),
                p => p.parse(),
            })
            .collect::<Result<_, _>>()?;
        if positions.len() > 20 {
            return Err("at most 20 positions".into());
        }
        Ok(positions)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}#{}@{}",
            self.aggregate_type, self.aggregate_id, self.sequence
        )
    }
}

impl FromStr for Position {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a position (<AggregateType>#<id>@<sequence>)");
        let (stream, sequence) = s.rsplit_once('@').ok_or_else(bad)?;
        let (aggregate_type, aggregate_id) = stream.split_once('#').ok_or_else(bad)?;
        // 1 to 19 digits without a leading zero: every such number fits a u64.
        let digits_ok = !sequence.is_empty()
            && sequence.len() <= 19
            && !sequence.starts_with('0')
            && sequence.bytes().all(|b| b.is_ascii_digit());
        if !digits_ok {
            return Err(bad());
        }
        let sequence: u64 = sequence.parse().map_err(|_| bad())?;
        let name_ok = |t: &str| {
            !t.is_empty() && t.len() <= 100 && t.chars().all(|c| c.is_ascii_alphanumeric())
        };
        let id_ok = |t: &str| {
            !t.is_empty()
                && t.len() <= 200
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'))
        };
        if !name_ok(aggregate_type) || !id_ok(aggregate_id) || sequence == 0 {
            return Err(bad());
        }
        Ok(Self {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            sequence,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rounds_of_a_bulk_pass_cover_each_type_and_table_once() {
        let tables = TableNames::with_prefix("c-");
        for projection in Projection::ALL {
            let mut types: Vec<&str> = projection.rounds().concat();
            let mut written: Vec<String> = (0..projection.rounds().len())
                .flat_map(|round| projection.round_tables(round, &tables))
                .collect();
            let (mut expected_types, mut expected_tables) = (
                projection.aggregate_types().to_vec(),
                projection.tables(&tables),
            );
            for list in [&mut types, &mut expected_types] {
                list.sort_unstable();
            }
            written.sort();
            expected_tables.sort();
            assert_eq!(types, expected_types, "{projection}");
            assert_eq!(written, expected_tables, "{projection}");
        }
    }

    #[test]
    fn versions_suffix_only_the_projections_own_tables() {
        let base = TableNames::with_prefix("c-");
        assert_eq!(base.at_version(Projection::Articles, 1), base);
        let v2 = base.at_version(Projection::Articles, 2);
        assert_eq!(v2.articles, "c-articles-v2");
        assert_eq!(v2.favorites, "c-favorites-v2");
        assert_eq!(v2.users, "c-users");
        assert_eq!(v2.events, "c-events");
        assert_eq!(v2.checkpoints, "c-checkpoints-articles-v2");
        assert_eq!(search_index("c-", 1), "c-articles-v1");
        assert_eq!(search_index("c-", 3), "c-articles-v3");
    }

    #[test]
    fn positions_round_trip_and_reject_garbage() {
        let p: Position = "Article#0b6c5d2e-1111-4222-8333-944445555666@12"
            .parse()
            .expect("valid");
        assert_eq!(p.sequence, 12);
        assert_eq!(
            p.stream_key(),
            "Article#0b6c5d2e-1111-4222-8333-944445555666"
        );
        assert_eq!(p.to_string().parse::<Position>(), Ok(p));
        for bad in [
            "",
            "Article",
            "Article#x",
            "Article#x@",
            "Article#x@0",
            "#x@1",
            "A b#x@1",
            "A#x y@1",
            "A#x@-1",
            "A#x@+1",
            "A#x@01",
            "A#x@12345678901234567890",
        ] {
            assert!(bad.parse::<Position>().is_err(), "{bad:?}");
        }
        assert_eq!(
            Position::parse_list("User#a@1, Article#b@2").map(|v| v.len()),
            Ok(2)
        );
        assert_eq!(
            Position::parse_list("User#a@1 ,\tArticle#b@2").map(|v| v.len()),
            Ok(2)
        );
        for bad in ["", " ", " , ", "User#a@1,", "User#a@1,,Article#b@2"] {
            assert!(Position::parse_list(bad).is_err(), "{bad:?}");
        }
        let many = vec!["User#a@1"; 21].join(",");
        assert!(Position::parse_list(&many).is_err());
    }

    #[test]
    fn projections_parse_by_name_and_know_their_streams() {
        for p in Projection::ALL {
            assert_eq!(p.name().parse::<Projection>(), Ok(p));
        }
        assert!("tags".parse::<Projection>().is_err());
        assert!(Projection::Feed.accepts("User"));
        assert!(!Projection::Search.accepts("Favorite"));
    }

    #[test]
    fn a_missing_registry_item_is_version_one() {
        let state = VersionState::from_item(&HashMap::new());
        assert_eq!(state, VersionState::default());
        let item = HashMap::from([
            (registry::ACTIVE.to_owned(), AttributeValue::N("2".into())),
            (registry::BUILDING.to_owned(), AttributeValue::N("3".into())),
            (
                registry::VERSIONS.to_owned(),
                AttributeValue::Ns(vec!["1".into(), "3".into()]),
            ),
        ]);
        let state = VersionState::from_item(&item);
        assert_eq!(state.active, 2);
        assert_eq!(state.building, Some(3));
        assert_eq!(state.versions, vec![1, 2, 3]);
    }
}
