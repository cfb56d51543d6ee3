//! Versions of the search read model: one concrete index per version (`<alias>-v<n>`), opened on demand.
//!
//! A replay builds version `n` beside the live one; readers and the live projector ask for the
//! active version's index by number. With OpenSearch the alias also follows the active version
//! ([`VersionedSearch::point_alias`]), so a reader that only knows the alias is switched too.
//! The embedded engine has no alias: its readers must ask for the version.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::{EmbeddedIndex, SearchBackend, SearchConfig, SearchError, SearchIndex};

/// How many versions' handles stay open in one [`VersionedSearch`]: the active one and the
/// one before it (readers that still see the old version for a moment after a switch).
const OPEN_VERSIONS: usize = 2;

/// Opens the index of any version of the search read model, and keeps the latest ones open.
/// Cheap to clone (the cache is shared).
#[derive(Clone, Debug)]
pub struct VersionedSearch {
    base: SearchConfig,
    /// Most recently used first.
    open: Arc<Mutex<Vec<(u32, SearchIndex)>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl VersionedSearch {
    /// The versions of the read model `base` configures (its alias names them all).
    pub fn new(base: SearchConfig) -> Self {
        Self {
            base,
            open: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// From the environment, as [`SearchConfig::from_env`].
    pub fn from_env(prefix: &str) -> Result<Self, String> {
        SearchConfig::from_env(prefix).map(Self::new)
    }

    pub fn base(&self) -> &SearchConfig {
        &self.base
    }

    /// The configuration of `version`: its concrete index, `<alias>-v<version>`.
    pub fn config(&self, version: u32) -> SearchConfig {
        self.base.at_version(version)
    }

    /// Whether an index built by this process outlives it (OpenSearch, or a directory): a
    /// replay run as its own process can only build such an index.
    pub fn persistent(&self) -> bool {
        !matches!(self.base.backend, SearchBackend::Embedded { dir: None })
    }

    /// The index of `version` for reading and writing, created if missing. Handles of the two
    /// most recently asked versions stay open; older ones are dropped (an embedded directory
    /// is unlocked once nobody else in the process holds it).
    pub async fn index(&self, version: u32) -> Result<SearchIndex, SearchError> {
        if let Some(index) = self.cached(version) {
            return Ok(index);
        }
        let index = self.config(version).open().await?;
        index.ensure_index().await?;
        self.remember(version, index.clone());
        Ok(index)
    }

    fn remember(&self, version: u32, index: SearchIndex) {
        let mut open = lock(&self.open);
        open.retain(|(v, _)| *v != version);
        open.insert(0, (version, index));
        open.truncate(OPEN_VERSIONS);
    }

    fn cached(&self, version: u32) -> Option<SearchIndex> {
        let mut open = lock(&self.open);
        let at = open.iter().position(|(v, _)| *v == version)?;
        let entry = open.remove(at);
        let index = entry.1.clone();
        open.insert(0, entry);
        Some(index)
    }

    /// Drops this handle's cached index of `version`, if any (a writer that must let go of
    /// an embedded directory: see [`EmbeddedIndex::shared_dir`]).
    pub fn close(&self, version: u32) {
        lock(&self.open).retain(|(v, _)| *v != version);
    }

    /// The index of `version` for reading: the process's open handle if there is one, else an
    /// embedded directory opened read-only (another process may hold its writer; such a
    /// handle is not kept, since it does not see later commits), or the OpenSearch index.
    /// Fails for an in-RAM index nobody in this process has.
    pub async fn reader(&self, version: u32) -> Result<SearchIndex, SearchError> {
        if let Some(index) = self.cached(version) {
            return Ok(index);
        }
        let config = self.config(version);
        match &config.backend {
            // A client of the domain: nothing to lock or to go stale, so it is kept.
            SearchBackend::OpenSearch { .. } => {
                let index = config.open().await?;
                self.remember(version, index.clone());
                Ok(index)
            }
            SearchBackend::Embedded { dir } => {
                let path = dir.as_ref().map(|dir| dir.join(&config.index));
                if let Some(index) = EmbeddedIndex::shared_if_open(&config.index, path.as_deref()) {
                    return Ok(SearchIndex::Embedded(index));
                }
                let Some(path) = path else {
                    return Err(SearchError::Unavailable(format!(
                        "search index {} is in the memory of another process",
                        config.index
                    )));
                };
                let index =
                    tokio::task::spawn_blocking(move || EmbeddedIndex::open_dir_read_only(path))
                        .await
                        .map_err(|e| {
                            SearchError::Unavailable(format!("opening the index: {e}"))
                        })??;
                Ok(SearchIndex::Embedded(index))
            }
        }
    }

    /// Makes `version` the one readers of the alias see (OpenSearch: one atomic alias
    /// update). The embedded engine has no alias: nothing to do.
    pub async fn point_alias(&self, version: u32) -> Result<(), SearchError> {
        match self.config(version).open().await? {
            SearchIndex::OpenSearch(index) => index.point_alias(&self.base.alias).await,
            SearchIndex::Embedded(_) => Ok(()),
        }
    }

    /// Creates the alias, pointing at `version`'s index (created too), unless the alias
    /// exists: what a fresh deployment needs before its first reader. Idempotent.
    pub async fn ensure_alias(&self, version: u32) -> Result<(), SearchError> {
        if !matches!(self.base.backend, SearchBackend::OpenSearch { .. }) {
            return Ok(());
        }
        let config = SearchConfig {
            backend: self.base.backend.clone(),
            alias: self.base.alias.clone(),
            index: self.config(version).index,
        };
        config.open().await?.ensure_index().await
    }

    /// Deletes `version`'s index. Refused for an embedded directory still open in this
    /// process (its writer would go on writing into a deleted directory).
    pub async fn remove(&self, version: u32) -> Result<(), SearchError> {
        self.close(version);
        let config = self.config(version);
        match &config.backend {
            SearchBackend::OpenSearch { .. } => match config.open().await? {
                SearchIndex::OpenSearch(index) => index.delete_index().await,
                SearchIndex::Embedded(_) => Ok(()),
            },
            SearchBackend::Embedded { dir: None } => {
                EmbeddedIndex::forget_in_ram(&config.index);
                Ok(())
            }
            SearchBackend::Embedded { dir: Some(dir) } => {
                let path: PathBuf = dir.join(&config.index);
                if EmbeddedIndex::shared_if_open(&config.index, Some(&path)).is_some() {
                    return Err(SearchError::Rejected(format!(
                        "search index {} is still open in this process",
                        path.display()
                    )));
                }
                match std::fs::remove_dir_all(&path) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(SearchError::Unavailable(format!(
                        "removing {}: {e}",
                        path.display()
                    ))),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ArticleDoc, ArticleQuery, Written};

    fn article(id: &str) -> ArticleDoc {
        ArticleDoc {
            article_id: id.into(),
            author_id: "u1".into(),
            slug: id.into(),
            title: id.into(),
            description: id.into(),
            tag_list: vec!["t".into()],
            created_at: "2024-01-01T00:00:00.000Z".into(),
            updated_at: "2024-01-01T00:00:00.000Z".into(),
        }
    }

    fn all() -> ArticleQuery {
        ArticleQuery {
            limit: 10,
            ..ArticleQuery::default()
        }
    }

    fn config(dir: Option<PathBuf>, alias: &str) -> SearchConfig {
        SearchConfig {
            backend: SearchBackend::Embedded { dir },
            alias: alias.into(),
            index: format!("{alias}-v1"),
        }
    }

    #[test]
    fn each_version_has_its_own_concrete_index() {
        let search = VersionedSearch::new(config(None, "p-articles"));
        assert_eq!(search.config(1).index, "p-articles-v1");
        assert_eq!(search.config(3).index, "p-articles-v3");
        assert_eq!(search.config(3).alias, "p-articles-v3");
        assert!(!search.persistent());
    }

    #[tokio::test]
    async fn versions_in_ram_are_shared_by_name_inside_the_process() {
        let alias = format!("vs{}-articles", std::process::id());
        let builder = VersionedSearch::new(config(None, &alias));
        let reader = VersionedSearch::new(config(None, &alias));
        let v2 = builder.index(2).await.unwrap();
        assert_eq!(
            v2.upsert(&article("a1"), 1).await.unwrap(),
            Written::Applied
        );
        // Another handle of the same process sees version 2, and version 1 stays apart.
        assert_eq!(
            reader
                .reader(2)
                .await
                .unwrap()
                .search(&all())
                .await
                .unwrap()
                .total,
            1
        );
        assert_eq!(
            reader
                .index(1)
                .await
                .unwrap()
                .search(&all())
                .await
                .unwrap()
                .total,
            0
        );
        builder.remove(2).await.unwrap();
        reader.close(2);
        assert!(
            reader.reader(2).await.is_err(),
            "a removed in-RAM version is gone"
        );
    }

    #[tokio::test]
    async fn a_directory_version_is_unlocked_with_its_last_holder_and_readable_meanwhile() {
        let dir = std::env::temp_dir().join(format!(
            "conduit-versioned-search-{}-{}",
            std::process::id(),
            crate::fnv1a_64(format!("{:?}", std::time::SystemTime::now()).as_bytes())
        ));
        let search = VersionedSearch::new(config(Some(dir.clone()), "d-articles"));
        let v2 = search.index(2).await.unwrap();
        v2.upsert(&article("a1"), 1).await.unwrap();
        // While open here, the directory is locked against other writers...
        let path = dir.join("d-articles-v2");
        assert!(EmbeddedIndex::open_dir(&path).is_err());
        // ...and a read-only handle (what another process would open) sees the commit.
        let read_only = EmbeddedIndex::open_dir_read_only(&path).unwrap();
        assert!(!read_only.writable());
        assert_eq!(read_only.search(&all()).await.unwrap().total, 1);
        assert!(matches!(
            read_only.upsert(&article("a2"), 1).await,
            Err(SearchError::Rejected(_))
        ));
        assert!(search.remove(2).await.is_err(), "still held by `v2`");
        drop(v2);
        // Nobody holds it any more: another writer may open it, and it can be removed.
        drop(EmbeddedIndex::open_dir(&path).unwrap());
        search.remove(2).await.unwrap();
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
