//! Every endpoint is scoped to the token's user: another user's id answers 404, a missing or
//! wrong token 401.

use sqlx::PgPool;

use crate::common::{TestApp, fixtures};

#[sqlx::test(migrations = false)]
async fn users_never_see_each_others_media(pool: PgPool) {
    let app = TestApp::start(pool, true).await;
    let (_, alice) = app.user("alice@example.org").await;
    let (_, bob) = app.user("bob@example.org").await;
    let bytes = std::fs::read(fixtures().join("no_exif.jpg")).unwrap();
    let (status, body) = app.upload(&alice, &[("mine.jpg", bytes)]).await;
    assert_eq!(status, 202, "{body}");
    let job = body["job"]["id"].as_str().unwrap().to_owned();
    let media = body["media"][0]["id"].as_str().unwrap().to_owned();
    app.wait_job(&alice, &job, std::time::Duration::from_secs(60))
        .await;

    for path in [
        format!("/v1/media/{media}"),
        format!("/v1/media/{media}/original"),
        format!("/v1/media/{media}/thumbnails/thumb"),
        format!("/v1/media/{media}/thumbnails/preview"),
        format!("/v1/jobs/{job}"),
    ] {
        assert_eq!(app.get_bytes(&alice, &path).await.0, 200, "{path}");
        assert_eq!(
            app.get_bytes(&bob, &path).await.0,
            404,
            "{path} leaked to another user"
        );
        assert_eq!(app.get_bytes("wrong-token", &path).await.0, 401, "{path}");
        let anonymous = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status().as_u16(), 401, "{path}");
    }
    let (_, list) = app.get(&bob, "/v1/media").await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0));
    let retry = app
        .http
        .post(format!("{}/v1/media/{media}/retry", app.base))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status().as_u16(), 404);
    let del = app
        .http
        .delete(format!("{}/v1/media/{media}", app.base))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status().as_u16(), 404);
    // Still there for its owner.
    assert_eq!(app.get(&alice, &format!("/v1/media/{media}")).await.0, 200);
    // Malformed ids are simply unknown.
    assert_eq!(app.get(&alice, "/v1/media/not-a-uuid").await.0, 404);
}

#[sqlx::test(migrations = false)]
async fn api_changes_are_audited_with_user_request_and_agent(pool: PgPool) {
    let app = TestApp::start(pool, false).await;
    let (user, token) = app.user("audited@example.org").await;
    let bytes = std::fs::read(fixtures().join("no_exif.jpg")).unwrap();
    let (_, body) = app.upload(&token, &[("a.jpg", bytes)]).await;
    let media = body["media"][0]["id"].as_str().unwrap().to_owned();
    // Over the accepted length: replaced by a server-made id, never a failed write.
    let long_id = "r".repeat(300);
    let resp = app
        .http
        .delete(format!("{}/v1/media/{media}", app.base))
        .bearer_auth(&token)
        .header("x-request-id", &long_id)
        .header("user-agent", "timeline-test/1.0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    let used = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(used, long_id);
    let (actor, request_id, agent): (Option<uuid::Uuid>, Option<String>, Option<String>) =
        sqlx::query_as(
            "SELECT user_id, request_id, user_agent FROM audit_logs
             WHERE resource_type = 'media_files' AND action = 'delete' AND resource_id = $1::uuid",
        )
        .bind(&media)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(actor, Some(user), "the acting user is recorded");
    assert_eq!(
        request_id.as_deref(),
        Some(used.as_str()),
        "the id the server answered with"
    );
    assert_eq!(agent.as_deref(), Some("timeline-test/1.0"));
}
