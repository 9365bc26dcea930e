//! API keys and webhook sources in the MongoDB store.

use async_trait::async_trait;
use bson::{Bson, doc};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;

use super::{MongoStore, mongo};
use crate::domain::{ApiKey, WebhookSource};
use crate::store::records::{ApiKeyRecord, WebhookSourceRecord, millis};
use crate::store::{AccessStore, StoreResult};

#[async_trait]
impl AccessStore for MongoStore {
    async fn insert_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        self.faults.step()?;
        self.api_keys.insert_one(ApiKeyRecord::from(key)).await.map_err(mongo)?;
        Ok(())
    }

    async fn api_key(&self, id: &str) -> StoreResult<Option<ApiKey>> {
        self.faults.step()?;
        let record = self.api_keys.find_one(doc! { "_id": id }).await.map_err(mongo)?;
        record.map(ApiKey::try_from).transpose()
    }

    async fn api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        self.faults.step()?;
        let records: Vec<ApiKeyRecord> = self
            .api_keys
            .find(doc! {})
            .sort(doc! { "created_at": -1, "_id": 1 })
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        records.into_iter().map(ApiKey::try_from).collect()
    }

    async fn revoke_api_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        self.faults.step()?;
        let result = self
            .api_keys
            .update_one(doc! { "_id": id, "revoked_at": Bson::Null }, doc! { "$set": { "revoked_at": millis(at) } })
            .await
            .map_err(mongo)?;
        Ok(result.matched_count == 1)
    }

    async fn insert_webhook_source(&self, source: &WebhookSource) -> StoreResult<()> {
        self.faults.step()?;
        self.webhook_sources.insert_one(WebhookSourceRecord::from(source)).await.map_err(mongo)?;
        Ok(())
    }

    async fn webhook_source(&self, id: &str) -> StoreResult<Option<WebhookSource>> {
        self.faults.step()?;
        let record = self.webhook_sources.find_one(doc! { "_id": id }).await.map_err(mongo)?;
        record.map(WebhookSource::try_from).transpose()
    }

    async fn webhook_sources(&self) -> StoreResult<Vec<WebhookSource>> {
        self.faults.step()?;
        let records: Vec<WebhookSourceRecord> = self
            .webhook_sources
            .find(doc! {})
            .sort(doc! { "created_at": -1, "_id": 1 })
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        records.into_iter().map(WebhookSource::try_from).collect()
    }

    async fn revoke_webhook_source(&self, id: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        self.faults.step()?;
        let result = self
            .webhook_sources
            .update_one(doc! { "_id": id, "revoked_at": Bson::Null }, doc! { "$set": { "revoked_at": millis(at) } })
            .await
            .map_err(mongo)?;
        Ok(result.matched_count == 1)
    }
}
