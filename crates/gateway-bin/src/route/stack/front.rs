//! The gateway-wide layers around the dispatcher: client IP, request id, and the global
//! response header rules.

use gateway_core::ResolveClientIpLayer;
use gateway_core::client_ip::ResolveClientIp;
use gateway_headers::{GlobalHeaders, ResponseHeaders, ResponseHeadersLayer, SetRequestId};
use tower::util::Either;
use tower_layer::Layer;

use super::layers::RouteStack;
use crate::config::Config;
use crate::route::dispatch::Dispatch;
use crate::serve::connection::RequestIdSource;

pub(super) type Dispatcher = Dispatch<RouteStack>;
type WithResponseRules = Either<ResponseHeaders<Dispatcher>, Dispatcher>;
/// The service every request of a generation enters.
pub(crate) type FrontService =
    ResolveClientIp<Either<SetRequestId<WithResponseRules>, WithResponseRules>>;

/// The gateway-wide layers around the dispatcher: client IP, request id, global response
/// header rules; and where the accounting finds each response's request id.
pub(super) fn front(
    config: &Config,
    global: Option<GlobalHeaders>,
    dispatch: Dispatcher,
    keep_path: bool,
) -> (FrontService, RequestIdSource) {
    let (request_id, response_rules) = match global {
        Some(global) => (global.request_id, global.response),
        None => (
            Some(
                gateway_headers::SetRequestIdLayer::new()
                    .trusted_proxies(config.server.trusted_proxies.clone()),
            ),
            Default::default(),
        ),
    };
    let with_rules = if response_rules.is_empty() {
        Either::Right(dispatch)
    } else {
        Either::Left(ResponseHeadersLayer::new(response_rules).layer(dispatch))
    };
    // The accounting reads each response's id from the echoed header; only when the id is
    // not echoed does it need the response extension (which costs allocations per response).
    let (service, source) = match request_id {
        Some(layer) => {
            let source = match layer.echoed_header() {
                _ if !keep_path => RequestIdSource::Unwanted,
                Some(header) => RequestIdSource::Echoed(header.clone()),
                None => RequestIdSource::Extension,
            };
            let extension = matches!(source, RequestIdSource::Extension);
            let layer = layer.response_extension(extension).layer(with_rules);
            (Either::Left(layer), source)
        }
        None => (Either::Right(with_rules), RequestIdSource::Unwanted),
    };
    let client_ip = ResolveClientIpLayer::new(config.server.trusted_proxies.clone());
    (client_ip.layer(service), source)
}
