//! Services and EndpointSlices from the API server, as catalog events.
//! A watch error (410 Gone, a dropped connection, an unreachable server)
//! re-lists with a short back-off ([`crate::retry`]); until then nothing
//! changes, so the dataplane keeps forwarding with the last good tables.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use tokio::sync::{mpsc, watch};

use services::compile::{name_of, namespace_of};

use crate::retry::{OutageLog, WatchBackoff};
use services::sync::CatalogEvent;

/// Watches both kinds until `shutdown` or until the receiver goes away.
pub async fn run(
    client: kube::Client,
    events: mpsc::UnboundedSender<CatalogEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    let services = watcher::watcher(Api::<Service>::all(client.clone()), crate::retry::watch_config())
        .backoff(WatchBackoff::default());
    let slices = watcher::watcher(Api::<EndpointSlice>::all(client), crate::retry::watch_config())
        .backoff(WatchBackoff::default());
    let (mut services_outage, mut slices_outage) = (OutageLog::new("services"), OutageLog::new("endpointslices"));
    let mut quiet_check = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut services = std::pin::pin!(services);
    let mut slices = std::pin::pin!(slices);
    let mut listed_services: Option<Vec<Service>> = None;
    let mut listed_slices: Option<Vec<EndpointSlice>> = None;
    loop {
        let event = tokio::select! {
            _ = shutdown.changed() => return,
            _ = quiet_check.tick() => {
                services_outage.tick();
                slices_outage.tick();
                None
            }
            e = services.next() => {
                match &e { Some(Err(err)) => services_outage.failed(err), Some(Ok(_)) => services_outage.succeeded(), None => {} }
                match e {
                Some(Ok(Event::Init)) => { listed_services = Some(Vec::new()); None }
                Some(Ok(Event::InitApply(s))) => { listed_services.get_or_insert_with(Vec::new).push(s); None }
                Some(Ok(Event::InitDone)) => Some(CatalogEvent::ServicesListed(listed_services.take().unwrap_or_default())),
                Some(Ok(Event::Apply(s))) => Some(CatalogEvent::ServiceApplied(Box::new(s))),
                Some(Ok(Event::Delete(s))) => Some(CatalogEvent::ServiceDeleted {
                    namespace: namespace_of(&s.metadata).into(),
                    name: name_of(&s.metadata).into(),
                }),
                Some(Err(_)) => None,
                None => return,
            }},
            e = slices.next() => {
                match &e { Some(Err(err)) => slices_outage.failed(err), Some(Ok(_)) => slices_outage.succeeded(), None => {} }
                match e {
                Some(Ok(Event::Init)) => { listed_slices = Some(Vec::new()); None }
                Some(Ok(Event::InitApply(s))) => { listed_slices.get_or_insert_with(Vec::new).push(s); None }
                Some(Ok(Event::InitDone)) => Some(CatalogEvent::SlicesListed(listed_slices.take().unwrap_or_default())),
                Some(Ok(Event::Apply(s))) => Some(CatalogEvent::SliceApplied(Box::new(s))),
                Some(Ok(Event::Delete(s))) => Some(CatalogEvent::SliceDeleted {
                    namespace: namespace_of(&s.metadata).into(),
                    name: name_of(&s.metadata).into(),
                }),
                Some(Err(_)) => None,
                None => return,
            }},
        };
        if let Some(event) = event {
            if events.send(event).is_err() {
                return;
            }
        }
    }
}
