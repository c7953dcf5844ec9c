//! `/v1/stories/{story}/documents`: named, versioned documents of a story
//! (text or JSON, at most 1 MiB each), written by people through here and
//! by jobs as they run; every version is kept until the document is
//! deleted.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warren_vocabulary::names;
use warren_vocabulary::text::MAX_DOCUMENT_BYTES;

use super::extract::{
    ApiPath, ApiQuery, bad_query, check_document_name, check_json, check_story_id, page_limit,
    read_body,
};
use super::middleware::Caller;
use super::params::{DocumentName, StoryId};
use super::views::fit;
use super::{AppState, MAX_RESPONSE_BYTES};
use crate::api::ApiError;
use crate::api::error::ErrorBody;
use crate::db::documents::{self, DocumentRecord, NewDocument, Writer};

/// The response header that carries a document's version.
pub(super) const VERSION_HEADER: &str = "warren-document-version";

/// Who wrote a version.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WriterView {
    /// A person, through the API.
    Person {
        /// The name of the token they sent; absent when the server has no
        /// tokens.
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// A job, as it ran.
    Job { job_id: String, run_id: String },
}

impl From<Writer> for WriterView {
    fn from(writer: Writer) -> Self {
        match writer {
            Writer::Person { token } => Self::Person { name: token },
            Writer::Job { job_id, run_id } => Self::Job { job_id, run_id },
        }
    }
}

/// One version of a document, its content aside.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentView {
    pub story_id: String,
    pub name: String,
    /// From 1, one more for each version.
    pub version: i64,
    /// `text/SUBTYPE` (UTF-8) or `application/json`.
    pub media_type: String,
    /// Of the content, in bytes.
    pub size: u64,
    /// Of the content: 64 lowercase hex digits.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub sha256: String,
    pub writer: WriterView,
    /// Unix milliseconds.
    pub created_at: i64,
}

impl From<DocumentRecord> for DocumentView {
    fn from(record: DocumentRecord) -> Self {
        Self {
            story_id: record.story_id,
            name: record.name,
            version: record.version,
            media_type: record.media_type,
            size: record.size,
            sha256: record.sha256,
            writer: record.writer.into(),
            created_at: record.created_at,
        }
    }
}

/// The characters a document name keeps in a URL path; the rest are
/// percent-encoded.
const IN_PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The URL of one version of a document.
fn version_url(record: &DocumentRecord) -> String {
    format!(
        "/v1/stories/{}/documents/{}?version={}",
        record.story_id,
        utf8_percent_encode(&record.name, IN_PATH),
        record.version
    )
}

/// A document's content as sent, and the media type it is stored with:
/// `text/SUBTYPE` in UTF-8, or `application/json` that parses. The route
/// reads at most [`MAX_DOCUMENT_BYTES`] of it.
async fn read_document(request: Request) -> Result<(String, Bytes), ApiError> {
    let media_type = media_type(request.headers())?;
    let (_, content) = read_body(request, &()).await.map_err(|e| {
        if e.status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError {
                message: format!("a document is at most {MAX_DOCUMENT_BYTES} bytes"),
                ..e
            }
        } else {
            e
        }
    })?;
    if media_type == "application/json" {
        check_json(&content)?;
    } else if let Err(e) = std::str::from_utf8(&content) {
        return Err(ApiError::bad_request(
            "invalid_text",
            format!(
                "a text document is UTF-8; this one is not from byte {}",
                e.valid_up_to()
            ),
        ));
    }
    Ok((media_type, content))
}

/// The media type a document is stored with, from `content-type`:
/// `text/SUBTYPE` or `application/json`, lowercase, with no parameter but
/// `charset=utf-8`.
fn media_type(headers: &HeaderMap) -> Result<String, ApiError> {
    let refused = || {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send a document as text (`text/plain`, `text/markdown` or another `text/...` type, in UTF-8) or as `application/json`",
        )
    };
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(refused)?;
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    for parameter in parts.map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = parameter.split_once('=').ok_or_else(refused)?;
        let value = value.trim().trim_matches('"');
        if !key.trim().eq_ignore_ascii_case("charset") || !value.eq_ignore_ascii_case("utf-8") {
            return Err(refused());
        }
    }
    // A subtype is a media type name of RFC 6838: at most 127 of these.
    let is_subtype = |s: &str| {
        !s.is_empty()
            && s.len() <= 127
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match essence.split_once('/') {
        Some(("application", "json")) => Ok(essence),
        Some(("text", subtype)) if is_subtype(subtype) => Ok(essence),
        _ => Err(refused()),
    }
}

#[utoipa::path(
    put, path = "/v1/stories/{story}/documents/{name}", operation_id = "put_document", tag = "documents",
    params(DocumentName),
    request_body(
        description = "The document's content, at most 1 MiB: text in UTF-8 (`text/plain`, `text/markdown` or any `text/...` type) or JSON (`application/json`); `charset=utf-8` is the only parameter taken",
        content((String = "text/plain"), (serde_json::Value = "application/json")),
    ),
    responses(
        (status = 201, description = "Stored as the document's next version (1 for a new document)", body = DocumentView,
         headers(("location" = String, description = "The URL of this version"))),
        (status = 200, description = "The latest version already holds this content with this media type: nothing was stored", body = DocumentView,
         headers(("location" = String, description = "The URL of that version"))),
        (status = 400, description = "`invalid_id` (a malformed story id or document name; the message says what is wrong), `invalid_json` (an `application/json` document that is not JSON) or `invalid_text` (a text document that is not UTF-8)", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the document is over 1 MiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: neither `text/...` nor `application/json`, or a parameter other than `charset=utf-8`", body = ErrorBody),
        (status = 503, description = "`insufficient_storage`: the data directory's disk is nearly full; nothing was stored", body = ErrorBody),
    )
)]
/// Store a new version of a document.
pub async fn put(
    State(state): State<AppState>,
    ApiPath((story, name)): ApiPath<(String, String)>,
    Extension(caller): Extension<Caller>,
    request: Request,
) -> Result<Response, ApiError> {
    // The path is checked before the body is read.
    check_story_id(&story)?;
    check_document_name(&name)?;
    let (media_type, content) = read_document(request).await?;
    state.engine.check_free_space()?;
    let new = NewDocument {
        story_id: story,
        name,
        media_type,
        content: content.into(),
        writer: Writer::Person { token: caller.name },
    };
    let stored = state
        .engine
        .database()
        .write(move |conn| documents::put(conn, &new))
        .await?;
    // Committed: jobs of the story waiting for it may go on.
    state.engine.documents_changed(&stored.record.story_id);
    let status = if stored.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = version_url(&stored.record);
    Ok((
        status,
        [(header::LOCATION, location)],
        Json(DocumentView::from(stored.record)),
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DocumentQuery {
    /// The version to read (default: the latest).
    #[param(minimum = 1, maximum = 9223372036854775807_i64)]
    version: Option<i64>,
}

#[utoipa::path(
    get, path = "/v1/stories/{story}/documents/{name}", operation_id = "get_document", tag = "documents",
    params(DocumentName, DocumentQuery),
    responses(
        (status = 200, description = "The content of the latest version (or of `version`), as stored, with its media type (text with `charset=utf-8`)",
         content((String = "text/plain"), (serde_json::Value = "application/json")),
         headers(
            ("warren-document-version" = i64, description = "The version served"),
            ("etag" = String, description = "The content's sha256, quoted"),
         )),
        (status = 400, description = "`invalid_id`, or `invalid_query` (a `version` that is not a whole number from 1)", body = ErrorBody),
        (status = 404, description = "`not_found`: no such document, or no such version of it", body = ErrorBody),
    )
)]
/// A document's content: its latest version, or the one asked for.
pub async fn get(
    State(state): State<AppState>,
    ApiPath((story, name)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<DocumentQuery>,
) -> Result<Response, ApiError> {
    check_story_id(&story)?;
    check_document_name(&name)?;
    if let Some(version) = query.version
        && version < 1
    {
        return Err(bad_query(
            "version",
            &version.to_string(),
            "not a version (a whole number from 1)",
        ));
    }
    let (story_id, document_name) = (story.clone(), name.clone());
    let document = state
        .engine
        .database()
        .query(move |conn| documents::get(conn, &story_id, &document_name, query.version))
        .await?
        .ok_or_else(|| match query.version {
            Some(v) => {
                ApiError::not_found(format!("version {v} of document {name:?} of story {story}"))
            }
            None => ApiError::not_found(format!("document {name:?} of story {story}")),
        })?;
    let record = document.record;
    let content_type = if record.media_type.starts_with("text/") {
        format!("{}; charset=utf-8", record.media_type)
    } else {
        record.media_type
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::ETAG, format!("\"{}\"", record.sha256)),
            (
                HeaderName::from_static(VERSION_HEADER),
                record.version.to_string(),
            ),
            // A document may be any text/... type, HTML included: a
            // browser shown one must not run it as a page of this origin,
            // nor guess another type.
            (header::CONTENT_SECURITY_POLICY, "sandbox".to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        document.content,
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DocumentsQuery {
    /// Cursor: the `next` of the previous page (a document name).
    #[param(min_length = 1, max_length = 128)]
    after: Option<String>,
    /// 1 to 500; 100 by default.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentList {
    pub story_id: String,
    /// The latest version of each document, in name order (byte order of
    /// their UTF-8).
    pub documents: Vec<DocumentView>,
    /// Pass as `after` for the next page; `null` on the last.
    pub next: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/stories/{story}/documents", operation_id = "list_documents", tag = "documents",
    params(StoryId, DocumentsQuery),
    responses(
        (status = 200, description = "A page of the story's documents (none when it has none), each its latest version without content", body = DocumentList),
        (status = 400, description = "`invalid_id`, or `invalid_query`", body = ErrorBody),
    )
)]
/// A story's documents, a page at a time.
pub async fn list(
    State(state): State<AppState>,
    ApiPath(story): ApiPath<String>,
    ApiQuery(query): ApiQuery<DocumentsQuery>,
) -> Result<Json<DocumentList>, ApiError> {
    check_story_id(&story)?;
    if let Some(after) = &query.after
        && !names::is_valid_document_name(after)
    {
        return Err(bad_query(
            "after",
            after,
            "not a document name (pass the `next` of the previous page)",
        ));
    }
    let limit = page_limit("limit", query.limit, 100)?;
    let story_id = story.clone();
    let page = state
        .engine
        .database()
        .query(move |conn| documents::list(conn, &story_id, query.after.as_deref(), limit))
        .await?;
    let mut views: Vec<DocumentView> = page.items.into_iter().map(Into::into).collect();
    // Room for the rest: a story id and a name, escaped.
    let cut = fit(&mut views, MAX_RESPONSE_BYTES.saturating_sub(4 << 10));
    let next = (page.more || cut)
        .then(|| views.last().map(|d| d.name.clone()))
        .flatten();
    Ok(Json(DocumentList {
        story_id: story,
        documents: views,
        next,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VersionsQuery {
    /// Cursor: the `next` of the previous page (a version; the page holds
    /// the versions before it).
    #[param(minimum = 1, maximum = 9223372036854775807_i64)]
    after: Option<i64>,
    /// 1 to 500; 100 by default.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentVersions {
    pub story_id: String,
    pub name: String,
    /// Newest first, without content.
    pub versions: Vec<DocumentView>,
    /// Pass as `after` for the next page; `null` on the last.
    pub next: Option<i64>,
}

#[utoipa::path(
    get, path = "/v1/stories/{story}/documents/{name}/versions", operation_id = "list_document_versions", tag = "documents",
    params(DocumentName, VersionsQuery),
    responses(
        (status = 200, description = "A page of the document's versions, newest first", body = DocumentVersions),
        (status = 400, description = "`invalid_id`, or `invalid_query`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such document", body = ErrorBody),
    )
)]
/// A document's history: every version, who wrote it and when.
pub async fn versions(
    State(state): State<AppState>,
    ApiPath((story, name)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<VersionsQuery>,
) -> Result<Json<DocumentVersions>, ApiError> {
    check_story_id(&story)?;
    check_document_name(&name)?;
    if let Some(after) = query.after
        && after < 1
    {
        return Err(bad_query(
            "after",
            &after.to_string(),
            "not a version (pass the `next` of the previous page)",
        ));
    }
    let limit = page_limit("limit", query.limit, 100)?;
    let (story_id, document_name) = (story.clone(), name.clone());
    let page = state
        .engine
        .database()
        .query(move |conn| documents::history(conn, &story_id, &document_name, query.after, limit))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("document {name:?} of story {story}")))?;
    let mut views: Vec<DocumentView> = page.items.into_iter().map(Into::into).collect();
    let cut = fit(&mut views, MAX_RESPONSE_BYTES.saturating_sub(4 << 10));
    let next = (page.more || cut)
        .then(|| views.last().map(|d| d.version))
        .flatten();
    Ok(Json(DocumentVersions {
        story_id: story,
        name,
        versions: views,
        next,
    }))
}

#[utoipa::path(
    delete, path = "/v1/stories/{story}/documents/{name}", operation_id = "delete_document", tag = "documents",
    params(DocumentName),
    responses(
        (status = 204, description = "Deleted, every version; the next version written under the name is 1"),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such document", body = ErrorBody),
    )
)]
/// Delete a document, every version of it.
pub async fn delete(
    State(state): State<AppState>,
    ApiPath((story, name)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    check_story_id(&story)?;
    check_document_name(&name)?;
    // Artifacts whose bytes only these versions hold (an agent's
    // documents) get blobs first, written and synced here rather than in
    // the writer's transaction, where every commit would wait for them.
    let database = state.engine.database().clone();
    let (story_id, document_name) = (story.clone(), name.clone());
    let kept = database
        .query(move |conn| documents::kept_only_here(conn, &story_id, &document_name))
        .await?;
    let store = state.runtime.artifact_store().clone();
    if !kept.is_empty() {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            for (_, content) in &kept {
                store.put(content)?;
            }
            store.sync()
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    }
    // One an agent wrote since has no blob yet: written in the transaction.
    let mut keep_blob = move |sha256: &str, bytes: &[u8]| {
        if store.has_blob(sha256, bytes.len() as u64) {
            return Ok(());
        }
        store
            .put(bytes)
            .and_then(|_| store.sync())
            .map_err(|e| e.to_string())
    };
    let (story_id, document_name) = (story.clone(), name.clone());
    let existed = database
        .write(move |conn| documents::delete(conn, &story_id, &document_name, &mut keep_blob))
        .await?;
    if existed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "document {name:?} of story {story}"
        )))
    }
}
