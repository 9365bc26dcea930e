//! API keys and webhook sources in the MongoDB store: two collections of credentials with the
//! same life (insert, find by id, list newest first, revoke once).

use async_trait::async_trait;
use bson::{Bson, doc};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::Collection;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{MongoStore, mongo};
use crate::domain::{ApiKey, WebhookSource};
use crate::store::records::{ApiKeyRecord, WebhookSourceRecord, millis};
use crate::store::{AccessStore, StoreError, StoreResult};

impl MongoStore {
    async fn insert_credential<R: Serialize + Send + Sync>(
        &self,
        collection: &Collection<R>,
        record: R,
    ) -> StoreResult<()> {
        self.faults.step()?;
        collection.insert_one(record).await.map_err(mongo)?;
        Ok(())
    }

    async fn credential<R, T>(&self, collection: &Collection<R>, id: &str) -> StoreResult<Option<T>>
    where
        R: DeserializeOwned + Send + Sync,
        T: TryFrom<R, Error = StoreError>,
    {
        self.faults.step()?;
        let record = collection.find_one(doc! { "_id": id }).await.map_err(mongo)?;
        record.map(T::try_from).transpose()
    }

    async fn credentials<R, T>(&self, collection: &Collection<R>) -> StoreResult<Vec<T>>
    where
        R: DeserializeOwned + Send + Sync,
        T: TryFrom<R, Error = StoreError>,
    {
        self.faults.step()?;
        let records: Vec<R> = collection
            .find(doc! {})
            .sort(doc! { "created_at": -1, "_id": 1 })
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        records.into_iter().map(T::try_from).collect()
    }

    async fn revoke_credential<R: Send + Sync>(
        &self,
        collection: &Collection<R>,
        id: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.faults.step()?;
        let result = collection
            .update_one(doc! { "_id": id, "revoked_at": Bson::Null }, doc! { "$set": { "revoked_at": millis(at) } })
            .await
            .map_err(mongo)?;
        Ok(result.matched_count == 1)
    }
}

#[async_trait]
impl AccessStore for MongoStore {
    async fn insert_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        self.insert_credential(&self.api_keys, ApiKeyRecord::from(key)).await
    }

    async fn api_key(&self, id: &str) -> StoreResult<Option<ApiKey>> {
        self.credential(&self.api_keys, id).await
    }

    async fn api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        self.credentials(&self.api_keys).await
    }

    async fn revoke_api_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        self.revoke_credential(&self.api_keys, id, at).await
    }

    async fn insert_webhook_source(&self, source: &WebhookSource) -> StoreResult<()> {
        self.insert_credential(&self.webhook_sources, WebhookSourceRecord::from(source)).await
    }

    async fn webhook_source(&self, id: &str) -> StoreResult<Option<WebhookSource>> {
        self.credential(&self.webhook_sources, id).await
    }

    async fn webhook_sources(&self) -> StoreResult<Vec<WebhookSource>> {
        self.credentials(&self.webhook_sources).await
    }

    async fn revoke_webhook_source(&self, id: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        self.revoke_credential(&self.webhook_sources, id, at).await
    }

    async fn touch_api_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        self.faults.step()?;
        self.api_keys
            .update_one(doc! { "_id": id }, doc! { "$set": { "last_used_at": millis(at) } })
            .await
            .map_err(mongo)?;
        Ok(())
    }
}
