//! The GraphQL API (async-graphql): the centre of Orgata's surface. Resolvers parse their
//! arguments, call the engine, and map its errors in exactly one function, [`to_graphql`].

pub mod http;
pub mod limits;
pub mod loaders;
mod mutation;
mod query;
mod subscription;
pub mod types;
pub mod ws;

use std::str::FromStr;

use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, ErrorExtensions, Schema};

pub use mutation::Mutation;
pub use query::Query;
pub use subscription::Subscription;

use crate::engine::{self, Engine, ErrorCode, Principal};
use crate::schema::FieldError;

pub type OrgataSchema = Schema<Query, Mutation, Subscription>;
pub type ApiResult<T> = Result<T, async_graphql::Error>;

/// How deep a query may nest.
pub const MAX_DEPTH: usize = 16;
/// How much a query may cost, counting one per field and multiplying by list sizes.
pub const MAX_COMPLEXITY: usize = 5_000;

/// The schema, serving `engine`.
pub fn build(engine: Engine) -> OrgataSchema {
    Schema::build(Query, Mutation, Subscription)
        .data(engine)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .extension(limits::AliasLimit)
        .extension(ErrorCodes)
        .finish()
}

/// Gives every error a code. Engine errors get theirs in [`to_graphql`]; the errors
/// async-graphql raises itself while parsing, validating and coercing a request (an unknown
/// input field, a value outside an enum, an `Int` that overflows, `null` for a non-null
/// variable) carry none, and they are all the client's input: BAD_INPUT, as REST and MCP
/// say for the same request.
pub struct ErrorCodes;

impl async_graphql::extensions::ExtensionFactory for ErrorCodes {
    fn create(&self) -> std::sync::Arc<dyn async_graphql::extensions::Extension> {
        std::sync::Arc::new(ErrorCodes)
    }
}

fn with_codes(mut response: async_graphql::Response) -> async_graphql::Response {
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", ErrorCode::BadInput.as_str());
        }
    }
    response
}

#[async_trait::async_trait]
impl async_graphql::extensions::Extension for ErrorCodes {
    async fn request(
        &self,
        context: &async_graphql::extensions::ExtensionContext<'_>,
        next: async_graphql::extensions::NextRequest<'_>,
    ) -> async_graphql::Response {
        with_codes(next.run(context).await)
    }

    fn subscribe<'s>(
        &self,
        context: &async_graphql::extensions::ExtensionContext<'_>,
        stream: futures::stream::BoxStream<'s, async_graphql::Response>,
        next: async_graphql::extensions::NextSubscribe<'_>,
    ) -> futures::stream::BoxStream<'s, async_graphql::Response> {
        use futures::StreamExt;
        next.run(context, stream).map(with_codes).boxed()
    }
}

/// The schema without an engine: enough to describe it (SDL, introspection), not to serve it.
pub fn bare() -> OrgataSchema {
    Schema::build(Query, Mutation, Subscription).finish()
}

/// The schema's SDL, as committed at `frontend-contract/schema.graphql`.
pub fn sdl() -> String {
    let mut text = bare().sdl();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// The one place engine errors become GraphQL errors: `extensions.code` always, and
/// `extensions.errors` (JSON pointer and message per field) for validation errors. Internal
/// errors are logged here and shown as a generic sentence.
pub fn to_graphql(error: engine::Error) -> async_graphql::Error {
    let code = error.code();
    if code == ErrorCode::Internal {
        tracing::error!(%error, "internal error");
    }
    let fields = error.field_errors();
    async_graphql::Error::new(error.public_message()).extend_with(|_, extensions| {
        extensions.set("code", code.as_str());
        if !fields.is_empty() {
            let list: Vec<async_graphql::Value> = fields
                .iter()
                .map(|field| {
                    let mut entry = async_graphql::indexmap::IndexMap::new();
                    entry
                        .insert(async_graphql::Name::new("pointer"), async_graphql::Value::from(field.pointer.clone()));
                    entry
                        .insert(async_graphql::Name::new("message"), async_graphql::Value::from(field.message.clone()));
                    async_graphql::Value::Object(entry)
                })
                .collect();
            extensions.set("errors", async_graphql::Value::List(list));
        }
    })
}

pub(crate) fn engine<'c>(context: &Context<'c>) -> ApiResult<&'c Engine> {
    context.data::<Engine>()
}

/// What every request carries for its caller, put there by its transport: the principal, and
/// the loaders that read as that principal.
pub(crate) fn caller_data(engine: &Engine, principal: Principal) -> async_graphql::Data {
    let loader = loaders::InterventionsByExecution { engine: engine.clone(), principal: principal.clone() };
    let mut data = async_graphql::Data::default();
    data.insert(DataLoader::new(loader, tokio::spawn));
    data.insert(principal);
    data
}

/// The caller, put into the request's data by the transport.
pub(crate) fn principal<'c>(context: &Context<'c>) -> ApiResult<&'c Principal> {
    context
        .data_opt::<Principal>()
        .ok_or_else(|| to_graphql(engine::Error::Unauthenticated("no credentials were presented".to_owned())))
}

/// Parses an id argument; a bad one is BAD_INPUT pointing at the argument.
pub(crate) fn parse_id<T: FromStr<Err = String>>(id: &async_graphql::ID, pointer: &str) -> ApiResult<T> {
    id.as_str().parse().map_err(|message| {
        to_graphql(engine::Error::InvalidValue {
            what: format!("argument {}", pointer.trim_start_matches('/')),
            errors: vec![FieldError { pointer: pointer.to_owned(), message }],
        })
    })
}
