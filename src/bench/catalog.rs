//! A benchmark's catalog: its instances `amcbench0000…`, one workflow per collection slot of an
//! instance (so no two collections of an instance share a workflow and window), the weeks, and
//! the collections seeded from them.

use futures::{StreamExt, TryStreamExt};

use super::BenchError;
use crate::ids::{CollectionId, InstanceId, WorkflowId};
use crate::store::{NewCollection, NewInstance, Store, WorkflowSource};
use crate::weeks::{generate_weeks, WeekRequest, WeekRules, WeekStart};

/// The seeded instances and workflows, and the weeks ending a fortnight ago.
pub(super) struct Catalog {
    workflows: Vec<WorkflowId>,
    instances: Vec<InstanceId>,
    /// `layout.weeks` plus one older week (for warm-up runs), oldest first.
    weeks: Vec<crate::weeks::Week>,
}

impl Catalog {
    pub(super) async fn seed(store: &Store, layout: Layout) -> Result<Catalog, BenchError> {
        let mut workflows = Vec::new();
        for j in 0..layout.collections_per_instance {
            let sql = format!(
                "SELECT campaign, SUM(impressions) AS impressions_{j}, SUM(clicks) AS clicks\n\
                 FROM sponsored_ads_traffic\n\
                 WHERE event_dt BETWEEN '{{{{start_date}}}}' AND '{{{{end_date}}}}'\n\
                 GROUP BY campaign"
            );
            let workflow = store
                .insert_workflow(&format!("bench-{j}"), &WorkflowSource::Sql(sql))
                .await?;
            workflows.push(workflow.id);
        }
        let weeks = generate_weeks(
            chrono::Utc::now().date_naive(),
            "UTC",
            &WeekRequest {
                weeks: layout.weeks + 1,
                end_date: None,
                week_start: WeekStart::Monday,
            },
            WeekRules {
                data_lag_days: 14,
                retention_days: 395,
            },
        )
        .map_err(|e| BenchError::Setup(format!("cannot generate weeks: {e}")))?;
        let mut instances = Vec::new();
        for i in 0..layout.instances {
            let instance = store
                .insert_instance(&NewInstance {
                    instance_id: format!("amcbench{i:04}"),
                    instance_name: format!("Bench instance {i}"),
                    region: "na".into(),
                    advertiser_id: format!("ENTITYBENCH{i}"),
                    marketplace_id: "ATVPDKIKX0DER".into(),
                })
                .await?;
            instances.push(instance.id);
        }
        Ok(Catalog {
            workflows,
            instances,
            weeks,
        })
    }

    /// One collection of every workflow on every instance, of `count` weeks from the `skip`
    /// newest: the layout's weeks are the newest, the warm-up week the one before them.
    pub(super) async fn collections(
        &self,
        store: &Store,
        count: i64,
        skip: usize,
    ) -> Result<Vec<CollectionId>, BenchError> {
        let newest = self.weeks.len().saturating_sub(skip);
        let first = newest.saturating_sub(usize::try_from(count).unwrap_or(0));
        let weeks = self.weeks[first..newest].to_vec();
        let mut collections = Vec::new();
        for instance_id in &self.instances {
            for workflow_id in &self.workflows {
                collections.push(NewCollection {
                    workflow_id: *workflow_id,
                    instance_id: *instance_id,
                    week_start: WeekStart::Monday,
                    time_zone: "UTC".into(),
                    weeks: weeks.clone(),
                    keep_fresh: None,
                    parameters: Default::default(),
                });
            }
        }
        // SQLite has one writer anyway; Postgres takes a few at once.
        let parallel = match store {
            Store::Postgres(_) => 8,
            Store::Sqlite(_) => 1,
        };
        let ids = futures::stream::iter(collections.iter())
            .map(|new| store.create_collection(new))
            .buffer_unordered(parallel)
            .try_collect()
            .await?;
        Ok(ids)
    }
}

/// How many instances, collections per instance and weeks per collection a run seeds.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub instances: usize,
    pub collections_per_instance: usize,
    pub weeks: i64,
}

impl Layout {
    pub fn collections(&self) -> usize {
        self.instances * self.collections_per_instance
    }

    pub fn total_weeks(&self) -> u64 {
        (self.collections() as u64) * self.weeks as u64
    }

    /// "200 collections x 52 weeks over 50 instances".
    pub fn describe(&self) -> String {
        format!(
            "{} collections x {} weeks over {} instances",
            self.collections(),
            self.weeks,
            self.instances
        )
    }
}
