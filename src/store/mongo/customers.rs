//! The staff console's customer search and list in the MongoDB store (indexes: see
//! `store::customers`).

use async_trait::async_trait;
use bson::{Bson, Document, doc};
use futures_util::TryStreamExt;
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};

use super::{MongoStore, card_fields, card_from_doc, mongo};
use crate::domain::{Card, Email};
use crate::store::StoreResult;
use crate::store::customers::{CustomerListQuery, CustomerSort, CustomerStore, merge_by_name, prefix_end};
use crate::store::records::name_keys;

/// The indexes of the customer search and list.
pub(super) fn indexes() -> Vec<IndexModel> {
    let named = |name: &str| IndexOptions::builder().name(name.to_owned()).build();
    vec![
        IndexModel::builder()
            .keys(doc! { "program_id": 1, "email": 1, "created_at": 1 })
            .options(
                IndexOptions::builder()
                    .name("program_email".to_owned())
                    .partial_filter_expression(doc! { "email": { "$type": "string" } })
                    .build(),
            )
            .build(),
        IndexModel::builder()
            .keys(doc! { "program_id": 1, "name_key": 1, "_id": 1 })
            .options(named("program_name"))
            .build(),
        IndexModel::builder()
            .keys(doc! { "program_id": 1, "surname_key": 1, "_id": 1 })
            .options(named("program_surname"))
            .build(),
        IndexModel::builder()
            .keys(doc! { "program_id": 1, "created_at": 1, "_id": 1 })
            .options(named("program_created"))
            .build(),
        IndexModel::builder()
            .keys(doc! { "program_id": 1, "balance": 1, "_id": 1 })
            .options(named("program_balance"))
            .build(),
        IndexModel::builder()
            .keys(doc! { "program_id": 1, "activity_at": 1, "_id": 1 })
            .options(named("program_activity"))
            .build(),
    ]
}

/// Fills the search fields of the cards stored before them.
pub(super) async fn backfill(cards: &Collection<Document>) -> anyhow::Result<()> {
    let mut cursor = cards
        .find(doc! { "activity_at": { "$exists": false } })
        .projection(doc! { "first_name": 1, "last_name": 1, "status": 1, "created_at": 1, "last_entry_at": 1 })
        .await?;
    while let Some(card) = cursor.try_next().await? {
        let Some(id) = card.get("_id").cloned() else { continue };
        let activity = card.get_i64("last_entry_at").or_else(|_| card.get_i64("created_at")).unwrap_or(0);
        let mut set = doc! { "activity_at": activity };
        if card.get_str("status").ok() != Some("deleted") {
            let first = card.get_str("first_name").unwrap_or_default();
            let (name, surname) = name_keys(first, card.get_str("last_name").ok());
            set.insert("name_key", name);
            set.insert("surname_key", surname.map_or(Bson::Null, Bson::String));
        }
        cards.update_one(doc! { "_id": id }, doc! { "$set": set }).await?;
    }
    Ok(())
}

impl MongoStore {
    async fn cards_where(&self, filter: Document, sort: Document, limit: usize) -> StoreResult<Vec<Card>> {
        self.faults.step()?;
        let docs: Vec<Document> = self
            .cards
            .find(filter)
            .projection(card_fields())
            .sort(sort)
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(mongo)?
            .try_collect()
            .await
            .map_err(mongo)?;
        docs.into_iter().map(card_from_doc).collect()
    }
}

#[async_trait]
impl CustomerStore for MongoStore {
    async fn cards_by_email(&self, program_id: &str, email: &Email, limit: usize) -> StoreResult<Vec<Card>> {
        self.cards_where(doc! { "program_id": program_id, "email": email.as_str() }, doc! { "created_at": -1 }, limit)
            .await
    }

    async fn cards_by_name_prefix(&self, program_id: &str, prefix: &str, limit: usize) -> StoreResult<Vec<Card>> {
        let prefix = prefix.to_lowercase();
        let end = prefix_end(&prefix);
        let range = |field: &str| {
            let mut filter = doc! { "program_id": program_id };
            filter.insert(field, doc! { "$gte": &prefix, "$lt": &end });
            filter
        };
        let by_name = self.cards_where(range("name_key"), doc! { "name_key": 1, "_id": 1 }, limit).await?;
        let by_surname = self.cards_where(range("surname_key"), doc! { "surname_key": 1, "_id": 1 }, limit).await?;
        Ok(merge_by_name(by_name, by_surname, limit))
    }

    async fn list_cards(&self, query: &CustomerListQuery<'_>) -> StoreResult<Vec<Card>> {
        let field = match query.sort {
            CustomerSort::Registered => "created_at",
            CustomerSort::Balance => "balance",
            CustomerSort::Activity => "activity_at",
        };
        let (direction, compare) = if query.descending { (-1, "$lt") } else { (1, "$gt") };
        let mut filter = doc! { "program_id": query.program_id };
        if let Some(after) = &query.after {
            // Keyset: strictly after (value, serial) in the list's order, one index range.
            filter.insert(
                "$or",
                vec![
                    doc! { field: { compare: after.value } },
                    doc! { field: after.value, "_id": { compare: &after.serial } },
                ],
            );
        }
        let mut sort = Document::new();
        sort.insert(field, direction);
        sort.insert("_id", direction);
        self.cards_where(filter, sort, query.limit).await
    }

    async fn count_card_devices(&self, serial: &str) -> StoreResult<u64> {
        self.faults.step()?;
        self.registrations.count_documents(doc! { "serial": serial }).await.map_err(mongo)
    }
}
