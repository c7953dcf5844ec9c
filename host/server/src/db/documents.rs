//! Documents of a story: named content (text or JSON) that people write
//! through the API and jobs write as they run, every version kept.
//! A document belongs to its story, not to a run: retention leaves it.
//!
//! Each function takes a [`Connection`] (a `Transaction` derefs to one), so
//! it runs in a `Database::write` or `Database::query` closure, or inside a
//! larger transaction such as the scheduler's. Callers check what they
//! store first: the name (`names::check_document_name`), the size
//! (`text::MAX_DOCUMENT_BYTES`) and that the content is of its media type.

use std::collections::{BTreeSet, HashSet};

use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};
use sha2::{Digest as _, Sha256};

use super::DbError;
use super::reads::{Page, page_of};
use warren_vocabulary::now_ms;

/// Who wrote a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writer {
    /// A person, through the API: the name of the token they sent (`None`
    /// when the server has no tokens).
    Person { token: Option<String> },
    /// A job, as it ran.
    Job { job_id: String, run_id: String },
}

/// A version to store.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub story_id: String,
    pub name: String,
    /// `text/SUBTYPE` or `application/json`, lowercase, without parameters.
    pub media_type: String,
    pub content: Vec<u8>,
    pub writer: Writer,
}

/// What is known of one version, its content aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRecord {
    pub story_id: String,
    pub name: String,
    /// From 1, one more for each version of the document.
    pub version: i64,
    pub media_type: String,
    /// Of the content, in bytes.
    pub size: u64,
    /// Of the content: 64 lowercase hex digits.
    pub sha256: String,
    pub writer: Writer,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// One version with its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub record: DocumentRecord,
    pub content: Vec<u8>,
}

/// What [`put`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put {
    /// The document's latest version now.
    pub record: DocumentRecord,
    /// Whether that version is new; `false` when the latest version already
    /// held this content with this media type.
    pub created: bool,
}

/// Every column but the content, in the order [`record`] reads them.
const COLUMNS: &str = "story_id, name, version, media_type, size, sha256, writer_kind, writer, job_id, run_id, created_at";

fn record(r: &Row<'_>) -> rusqlite::Result<DocumentRecord> {
    let kind: String = r.get(6)?;
    let writer = match (kind.as_str(), r.get(8)?, r.get(9)?) {
        ("person", _, _) => Writer::Person { token: r.get(7)? },
        ("job", Some(job_id), Some(run_id)) => Writer::Job { job_id, run_id },
        _ => {
            return Err(rusqlite::Error::FromSqlConversionFailure(
                6,
                Type::Text,
                format!("writer kind {kind:?} without its job").into(),
            ));
        }
    };
    Ok(DocumentRecord {
        story_id: r.get(0)?,
        name: r.get(1)?,
        version: r.get(2)?,
        media_type: r.get(3)?,
        size: r.get::<_, i64>(4)?.max(0) as u64,
        sha256: r.get(5)?,
        writer,
        created_at: r.get(10)?,
    })
}

/// Stores `new` as the next version of its document (1 for a new one).
/// When the latest version already holds the same content with the same
/// media type, stores nothing and returns that version: a request sent
/// again, or a job's attempt run again, adds no version.
pub fn put(conn: &Connection, new: &NewDocument) -> Result<Put, DbError> {
    let sha256 = hex::encode(Sha256::digest(&new.content));
    if let Some(latest) = get_record(conn, &new.story_id, &new.name, None)?
        && latest.sha256 == sha256
        && latest.media_type == new.media_type
    {
        return Ok(Put {
            record: latest,
            created: false,
        });
    }
    let (kind, writer, job_id, run_id) = match &new.writer {
        Writer::Person { token } => ("person", token.as_deref(), None, None),
        Writer::Job { job_id, run_id } => ("job", None, Some(job_id), Some(run_id)),
    };
    let sql = format!(
        "INSERT INTO documents ({COLUMNS}, content)
         SELECT ?1, ?2, coalesce(max(version), 0) + 1, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11
         FROM documents WHERE story_id = ?1 AND name = ?2
         RETURNING {COLUMNS}"
    );
    let record = conn.prepare_cached(&sql)?.query_row(
        params![
            new.story_id,
            new.name,
            new.media_type,
            new.content.len() as i64,
            sha256,
            kind,
            writer,
            job_id,
            run_id,
            now_ms(),
            new.content,
        ],
        record,
    )?;
    Ok(Put {
        record,
        created: true,
    })
}

/// The metadata of a document's `version`, or of its latest.
fn get_record(
    conn: &Connection,
    story_id: &str,
    name: &str,
    version: Option<i64>,
) -> Result<Option<DocumentRecord>, DbError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM documents WHERE story_id = ?1 AND name = ?2
           AND (?3 IS NULL OR version = ?3)
         ORDER BY version DESC LIMIT 1"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![story_id, name, version], record)
        .optional()?)
}

/// A document's `version` (its latest when `None`) with its content.
pub fn get(
    conn: &Connection,
    story_id: &str,
    name: &str,
    version: Option<i64>,
) -> Result<Option<Document>, DbError> {
    let sql = format!(
        "SELECT {COLUMNS}, content FROM documents WHERE story_id = ?1 AND name = ?2
           AND (?3 IS NULL OR version = ?3)
         ORDER BY version DESC LIMIT 1"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![story_id, name, version], |r| {
            Ok(Document {
                record: record(r)?,
                content: r.get(11)?,
            })
        })
        .optional()?)
}

/// The latest version, with its content, of each of `names` the story has,
/// in the order of `names`; a name it has no document of is left out.
pub fn latest_of(
    conn: &Connection,
    story_id: &str,
    names: &[String],
) -> Result<Vec<Document>, DbError> {
    let mut found = Vec::with_capacity(names.len());
    for name in names {
        if let Some(document) = get(conn, story_id, name, None)? {
            found.push(document);
        }
    }
    Ok(found)
}

/// The names of the story's documents (read from the index alone).
pub fn names(conn: &Connection, story_id: &str) -> Result<BTreeSet<String>, DbError> {
    let mut stmt =
        conn.prepare_cached("SELECT DISTINCT name FROM documents WHERE story_id = ?1")?;
    let names = stmt.query_map([story_id], |r| r.get(0))?;
    Ok(names.collect::<Result<_, _>>()?)
}

/// The latest version of each of the story's documents, in name order,
/// after the name `after`: at most `limit`.
pub fn list(
    conn: &Connection,
    story_id: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<DocumentRecord>, DbError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM documents AS d
         WHERE story_id = ?1 AND (?2 IS NULL OR name > ?2)
           AND version = (SELECT max(version) FROM documents
                          WHERE story_id = d.story_id AND name = d.name)
         ORDER BY name LIMIT ?3"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![story_id, after, (limit as i64).saturating_add(1)],
        record,
    )?;
    page_of(rows.map(|row| Ok(row?)), limit, usize::MAX, |_| 0)
}

/// Every version of a document, newest first, older than `before` (a
/// version): at most `limit`. `None` when the story has no such document.
pub fn history(
    conn: &Connection,
    story_id: &str,
    name: &str,
    before: Option<i64>,
    limit: usize,
) -> Result<Option<Page<DocumentRecord>>, DbError> {
    if get_record(conn, story_id, name, None)?.is_none() {
        return Ok(None);
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM documents
         WHERE story_id = ?1 AND name = ?2 AND (?3 IS NULL OR version < ?3)
         ORDER BY version DESC LIMIT ?4"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![story_id, name, before, (limit as i64).saturating_add(1)],
        record,
    )?;
    page_of(rows.map(|row| Ok(row?)), limit, usize::MAX, |_| 0).map(Some)
}

/// `(sha256, content)` of the versions of a document whose bytes are
/// an artifact's and held by no other document (an agent's document, see
/// `in_documents` in the `artifacts` table): what needs a blob before the
/// document is deleted.
pub fn kept_only_here(
    conn: &Connection,
    story_id: &str,
    name: &str,
) -> Result<Vec<(String, Vec<u8>)>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.sha256, d.content FROM documents d
         WHERE d.story_id = ?1 AND d.name = ?2
           AND EXISTS (SELECT 1 FROM artifacts a WHERE a.sha256 = d.sha256 AND a.in_documents)
           AND NOT EXISTS (SELECT 1 FROM documents o WHERE o.sha256 = d.sha256
                             AND (o.story_id <> ?1 OR o.name <> ?2))
         GROUP BY d.sha256",
    )?;
    let rows = stmt.query_map(params![story_id, name], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Makes sure the artifact store durably holds `(sha256, bytes)`.
pub type KeepBlob<'a> = dyn FnMut(&str, &[u8]) -> Result<(), String> + 'a;

/// Deletes a document, every version of it; says whether it existed. The
/// next version written under its name is 1 again.
///
/// An artifact whose bytes are kept only here ([`kept_only_here`]) must not
/// point at nothing: `keep_blob` makes sure the artifact store holds those
/// bytes durably before the artifact is marked as having a blob and the
/// versions go.
pub fn delete(
    conn: &Connection,
    story_id: &str,
    name: &str,
    keep_blob: &mut KeepBlob<'_>,
) -> Result<bool, DbError> {
    for (sha256, content) in kept_only_here(conn, story_id, name)? {
        keep_blob(&sha256, &content).map_err(|e| {
            DbError::Commit(format!(
                "keeping the artifact {sha256} of a deleted document: {e}"
            ))
        })?;
        conn.prepare_cached(
            "UPDATE artifacts SET in_documents = 0 WHERE sha256 = ?1 AND in_documents",
        )?
        .execute([sha256])?;
    }
    let deleted = conn
        .prepare_cached("DELETE FROM documents WHERE story_id = ?1 AND name = ?2")?
        .execute(params![story_id, name])?;
    Ok(deleted > 0)
}

/// The content of a version whose sha256 is `digest`, if some version
/// holds it: the bytes of an artifact kept as a document. `Err(size)`
/// when it is more than `limit` bytes.
pub fn content_by_digest(
    conn: &Connection,
    digest: &str,
    limit: u64,
) -> Result<Option<Result<Vec<u8>, u64>>, DbError> {
    let found: Option<(i64, Option<Vec<u8>>)> = conn
        .prepare_cached(
            "SELECT size, CASE WHEN size <= ?2 THEN content END FROM documents
             WHERE sha256 = ?1 LIMIT 1",
        )?
        .query_row(params![digest, limit.min(i64::MAX as u64) as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    Ok(found.map(|(size, content)| content.ok_or(size.max(0) as u64)))
}

/// Which of `names` the story has a document of.
pub fn which_exist(
    conn: &Connection,
    story_id: &str,
    names: &[String],
) -> Result<HashSet<String>, DbError> {
    let mut stmt =
        conn.prepare_cached("SELECT 1 FROM documents WHERE story_id = ?1 AND name = ?2 LIMIT 1")?;
    let mut found = HashSet::new();
    for name in names {
        if stmt.exists(params![story_id, name])? {
            found.insert(name.clone());
        }
    }
    Ok(found)
}

/// A document an agent wrote, as its job's new version: `application/json`
/// when it parses as JSON, `text/plain` otherwise.
pub fn put_from_job(
    conn: &Connection,
    story_id: &str,
    name: &str,
    content: &str,
    run_id: &str,
    job_id: &str,
) -> Result<Put, DbError> {
    let is_json = serde_json::from_str::<serde::de::IgnoredAny>(content).is_ok();
    put(
        conn,
        &NewDocument {
            story_id: story_id.to_owned(),
            name: name.to_owned(),
            media_type: if is_json {
                "application/json"
            } else {
                "text/plain"
            }
            .to_owned(),
            content: content.as_bytes().to_vec(),
            writer: Writer::Job {
                job_id: job_id.to_owned(),
                run_id: run_id.to_owned(),
            },
        },
    )
}

/// The latest version of each of `names` the story has, as text (what an
/// agent is handed).
pub fn latest_texts(
    conn: &Connection,
    story_id: &str,
    names: &[String],
) -> Result<Vec<(String, String)>, DbError> {
    latest_of(conn, story_id, names)?
        .into_iter()
        .map(|document| {
            let name = document.record.name;
            String::from_utf8(document.content)
                .map(|text| (name.clone(), text))
                .map_err(|_| DbError::Corrupt(format!("document {name:?} is not UTF-8")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Database, Durability, retention};

    fn open() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::open(&dir.path().join("w.db"), Durability::Normal).expect("open");
        (dir, db)
    }

    fn text(story: &str, name: &str, content: &str) -> NewDocument {
        NewDocument {
            story_id: story.into(),
            name: name.into(),
            media_type: "text/markdown".into(),
            content: content.as_bytes().to_vec(),
            writer: Writer::Person {
                token: Some("ops".into()),
            },
        }
    }

    async fn put_now(db: &Database, new: NewDocument) -> Put {
        db.write(move |conn| put(conn, &new)).await.expect("put")
    }

    #[tokio::test]
    async fn versions_count_up_per_document_and_same_content_adds_none() {
        let (_dir, db) = open();
        let first = put_now(&db, text("s", "plan.md", "one")).await;
        assert!(first.created);
        assert_eq!(first.record.version, 1);
        assert_eq!(first.record.size, 3);
        assert_eq!(
            first.record.sha256,
            "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed"
        );
        assert_eq!(
            first.record.writer,
            Writer::Person {
                token: Some("ops".into())
            }
        );
        let again = put_now(&db, text("s", "plan.md", "one")).await;
        assert_eq!(
            again,
            Put {
                created: false,
                ..first.clone()
            }
        );
        let as_text = put_now(
            &db,
            NewDocument {
                media_type: "text/plain".into(),
                ..text("s", "plan.md", "one")
            },
        )
        .await;
        assert_eq!((as_text.created, as_text.record.version), (true, 2));
        let job = put_now(
            &db,
            NewDocument {
                writer: Writer::Job {
                    job_id: "j".into(),
                    run_id: "r".into(),
                },
                ..text("s", "plan.md", "three")
            },
        )
        .await;
        assert_eq!(job.record.version, 3);
        assert_eq!(
            put_now(&db, text("s", "other", "x")).await.record.version,
            1
        );
        assert_eq!(
            put_now(&db, text("t", "plan.md", "x")).await.record.version,
            1
        );

        let latest = db.read(|c| get(c, "s", "plan.md", None)).expect("get");
        let latest = latest.expect("found");
        assert_eq!(latest.content, b"three");
        assert_eq!(latest.record, job.record);
        let first_again = db.read(|c| get(c, "s", "plan.md", Some(1))).expect("get");
        assert_eq!(first_again.map(|d| d.content), Some(b"one".to_vec()));
        assert_eq!(
            db.read(|c| get(c, "s", "plan.md", Some(4))).expect("get"),
            None
        );
        assert_eq!(db.read(|c| get(c, "s", "nope", None)).expect("get"), None);
    }

    #[tokio::test]
    async fn lists_show_the_latest_of_each_name_and_histories_every_version() {
        let (_dir, db) = open();
        for (name, content) in [("b", "1"), ("a", "1"), ("b", "2"), ("c", "1"), ("b", "3")] {
            put_now(&db, text("s", name, content)).await;
        }
        put_now(&db, text("other", "a", "elsewhere")).await;
        let page = db.read(|c| list(c, "s", None, 2)).expect("list");
        let shown: Vec<(&str, i64)> = page
            .items
            .iter()
            .map(|d| (d.name.as_str(), d.version))
            .collect();
        assert_eq!((shown, page.more), (vec![("a", 1), ("b", 3)], true));
        let page = db.read(|c| list(c, "s", Some("b"), 2)).expect("list");
        assert_eq!(page.items.len(), 1);
        assert_eq!((page.items[0].name.as_str(), page.more), ("c", false));
        assert!(
            db.read(|c| list(c, "empty", None, 10))
                .expect("list")
                .items
                .is_empty()
        );

        let names = db.read(|c| names(c, "s")).expect("names");
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["a", "b", "c"]);

        let page = db
            .read(|c| history(c, "s", "b", None, 2))
            .expect("history")
            .expect("b exists");
        let versions: Vec<i64> = page.items.iter().map(|d| d.version).collect();
        assert_eq!((versions, page.more), (vec![3, 2], true));
        let page = db
            .read(|c| history(c, "s", "b", Some(2), 2))
            .expect("history")
            .expect("b exists");
        let versions: Vec<i64> = page.items.iter().map(|d| d.version).collect();
        assert_eq!((versions, page.more), (vec![1], false));
        assert_eq!(
            db.read(|c| history(c, "s", "z", None, 2))
                .expect("history")
                .map(|p| p.items),
            None
        );

        let wanted = ["c".to_owned(), "missing".to_owned(), "a".to_owned()];
        let found = db.read(|c| latest_of(c, "s", &wanted)).expect("latest");
        let found: Vec<(&str, &[u8])> = found
            .iter()
            .map(|d| (d.record.name.as_str(), d.content.as_slice()))
            .collect();
        assert_eq!(found, [("c", &b"1"[..]), ("a", &b"1"[..])]);
    }

    #[tokio::test]
    async fn deleting_takes_every_version_and_the_name_starts_over() {
        let (_dir, db) = open();
        put_now(&db, text("s", "a", "1")).await;
        put_now(&db, text("s", "a", "2")).await;
        put_now(&db, text("t", "a", "kept")).await;
        let mut no_blob =
            |_: &str, _: &[u8]| -> Result<(), String> { panic!("no artifact holds these") };
        assert!(
            db.read(|c| delete(c, "s", "a", &mut no_blob))
                .expect("delete")
        );
        assert!(
            !db.read(|c| delete(c, "s", "a", &mut no_blob))
                .expect("delete again")
        );
        assert_eq!(db.read(|c| get(c, "s", "a", Some(1))).expect("get"), None);
        assert!(db.read(|c| get(c, "t", "a", None)).expect("get").is_some());
        assert_eq!(put_now(&db, text("s", "a", "3")).await.record.version, 1);
    }

    #[tokio::test]
    async fn deleting_the_last_document_holding_an_artifacts_bytes_gives_it_a_blob() {
        let (_dir, db) = open();
        db.write(|conn| {
            conn.execute_batch(
                "INSERT INTO runs (id, spec, input, story_id, state, created_at, updated_at)
                 VALUES ('r', '{}', '{}', 's', 'running', 1, 1);
                 INSERT INTO jobs (id, run_id, name, plugin, input, state, retry, limits, created_at, updated_at)
                 VALUES ('j', 'r', 'writer', 'writer', '{}', 'succeeded', '{}', '{}', 1, 1);",
            )?;
            for (story, content) in [("s", "draft"), ("s", "shared"), ("t", "shared")] {
                let name = if story == "s" { "a" } else { "b" };
                let put = put_from_job(conn, story, name, content, "r", "j")?;
                conn.execute(
                    "INSERT INTO artifacts (job_id, name, sha256, size, in_documents)
                     VALUES ('j', ?1, ?2, ?3, 1)",
                    params![
                        format!("documents/{name}/{content}"),
                        put.record.sha256,
                        content.len()
                    ],
                )?;
            }
            Ok(())
        })
        .await
        .expect("stored");
        let mut blobs: Vec<Vec<u8>> = Vec::new();
        let mut keep = |_: &str, bytes: &[u8]| -> Result<(), String> {
            blobs.push(bytes.to_vec());
            Ok(())
        };
        assert!(db.read(|c| delete(c, "s", "a", &mut keep)).expect("delete"));
        // "shared" is still story t's document: only "draft" needs a blob.
        assert_eq!(blobs, [b"draft".to_vec()]);
        let marked: Vec<(String, bool)> = db
            .read(|c| {
                let mut stmt =
                    c.prepare("SELECT name, in_documents FROM artifacts ORDER BY name")?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .expect("artifacts");
        assert_eq!(
            marked,
            [
                ("documents/a/draft".to_owned(), false),
                ("documents/a/shared".to_owned(), true),
                ("documents/b/shared".to_owned(), true),
            ]
        );
        let shared = hex::encode(Sha256::digest(b"shared"));
        assert_eq!(
            db.read(|c| content_by_digest(c, &shared, 100))
                .expect("read"),
            Some(Ok(b"shared".to_vec()))
        );
        assert_eq!(
            db.read(|c| content_by_digest(c, &shared, 3)).expect("read"),
            Some(Err(6))
        );
        let draft = hex::encode(Sha256::digest(b"draft"));
        assert_eq!(
            db.read(|c| content_by_digest(c, &draft, 100))
                .expect("read"),
            None
        );
    }

    #[tokio::test]
    async fn retention_deleting_the_writing_run_leaves_the_document() {
        let (_dir, db) = open();
        db.write(|conn| {
            conn.execute(
                "INSERT INTO runs (id, spec, input, story_id, state, created_at, updated_at, finished_at)
                 VALUES ('r', '{}', '{}', 's', 'completed', 1, 1, 1)",
                [],
            )?;
            put(
                conn,
                &NewDocument {
                    writer: Writer::Job {
                        job_id: "j".into(),
                        run_id: "r".into(),
                    },
                    ..text("s", "report", "made by r")
                },
            )?;
            Ok(())
        })
        .await
        .expect("stored");
        let deleted = db
            .write(|conn| retention::delete_ended_runs(conn, 2, 10))
            .await
            .expect("retention");
        assert_eq!(deleted, 1);
        let kept = db.read(|c| get(c, "s", "report", None)).expect("get");
        let kept = kept.expect("the document outlives its run");
        assert_eq!(kept.content, b"made by r");
        assert_eq!(
            kept.record.writer,
            Writer::Job {
                job_id: "j".into(),
                run_id: "r".into()
            }
        );
    }
}
