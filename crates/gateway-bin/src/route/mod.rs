//! From a request to its route's layers: path normalization, the route table, the dispatcher,
//! the request body limit, and the layer stack each route is built into.

pub(crate) mod dispatch;
pub(crate) mod path;
pub(crate) mod request_body;
pub(crate) mod stack;
pub(crate) mod table;
