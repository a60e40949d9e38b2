//! Authentication: API keys (random, 256 bits, shown once, stored as SHA-256 hashes) and JWT
//! bearer tokens (HS256 secret or RS256 public key), the same on every protocol. A key is
//! `orgata_<id>_<secret>`; the id finds the row, the secret is compared in constant time.
//! Secrets never reach logs, history or error messages.

use base64::Engine as _;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Set};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::engine::access::Grants;
use crate::engine::error::{Error, Result};
use crate::engine::types::{Environment, Principal};
use crate::engine::{Engine, Inner};
use crate::store::entity::api_key;

const PREFIX: &str = "orgata_";

/// How JWT bearer tokens are checked.
#[derive(Clone, Default)]
pub struct JwtConfig {
    /// Shared secret for HS256.
    pub hs256_secret: Option<String>,
    /// PEM public key for RS256.
    pub rs256_public_key: Option<String>,
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Required `aud`, if set.
    pub audience: Option<String>,
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret stays out of debug output, and so out of logs.
        formatter
            .debug_struct("JwtConfig")
            .field("hs256_secret", &self.hs256_secret.as_ref().map(|_| "***"))
            .field("rs256_public_key", &self.rs256_public_key.is_some())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

/// An API key as listed: everything but its secret.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub roles: Vec<String>,
    pub grants: Vec<String>,
    pub created_by: String,
    pub created_at: chrono::DateTime<Utc>,
    pub revoked_at: Option<chrono::DateTime<Utc>>,
}

/// The claims Orgata reads from a JWT.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    grants: Vec<String>,
}

fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

fn record(row: api_key::Model) -> ApiKey {
    let strings = |value: &serde_json::Value| -> Vec<String> {
        value
            .as_array()
            .map(|list| list.iter().filter_map(|item| item.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    ApiKey {
        roles: strings(&row.roles),
        grants: strings(&row.grants),
        id: row.id,
        name: row.name,
        created_by: row.created_by,
        created_at: row.created_at,
        revoked_at: row.revoked_at,
    }
}

/// Managing a key needs admin in every environment the key is granted.
fn may_manage(principal: &Principal, grants: &Grants) -> Result<()> {
    let missing: Vec<Environment> =
        grants.environments().filter(|environment| !principal.grants.is_admin(*environment)).collect();
    if missing.is_empty() && principal.grants.environments().any(|environment| principal.grants.is_admin(environment)) {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "`{}` must administer every environment the key is granted ({})",
            principal.id,
            grants.environments().map(Environment::as_str).collect::<Vec<_>>().join(", ")
        )))
    }
}

impl Engine {
    /// Whether any credential is configured: an active API key, or JWT verification.
    pub async fn keys_configured(&self) -> Result<bool> {
        if self.inner.config.jwt.is_some() {
            return Ok(true);
        }
        let active = api_key::Entity::find()
            .select_only()
            .column(api_key::Column::Id)
            .filter(api_key::Column::RevokedAt.is_null())
            .into_tuple::<String>()
            .one(self.inner.store.connection())
            .await?;
        Ok(active.is_some())
    }

    /// The principal a request acts as. Without a token, a loopback server with no keys lets
    /// the local user act as `developer` (development and simulation only).
    pub async fn authenticate(&self, bearer: Option<&str>, loopback: bool) -> Result<Principal> {
        match bearer.map(str::trim).filter(|token| !token.is_empty()) {
            None if loopback && !self.keys_configured().await? => Ok(Principal::developer()),
            None => Err(Error::Unauthenticated("this server needs a bearer token: an API key or a JWT".to_owned())),
            Some(token) if token.starts_with(PREFIX) => self.inner.authenticate_key(token).await,
            Some(token) => self.inner.authenticate_jwt(token),
        }
    }

    /// Creates an API key; the returned token is shown once and never stored.
    pub async fn create_key(
        &self,
        principal: &Principal,
        name: &str,
        roles: &[String],
        grants: &[String],
    ) -> Result<(ApiKey, String)> {
        let parsed = Grants::parse(grants).map_err(Error::BadInput)?;
        if name.trim().is_empty() || name.len() > 100 {
            return Err(Error::BadInput("a key needs a name of 1 to 100 characters".to_owned()));
        }
        may_manage(principal, &parsed)?;
        let id: String = {
            let bytes: [u8; 9] = rand::random();
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes).to_lowercase().replace(['-', '_'], "x")
        };
        let secret_bytes: [u8; 32] = rand::random();
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret_bytes);
        let row = api_key::Model {
            id: id.clone(),
            name: name.trim().to_owned(),
            roles: json!(roles),
            grants: json!(parsed.to_strings()),
            secret_hash: hash(&secret),
            created_by: principal.id.clone(),
            created_at: Utc::now(),
            revoked_at: None,
        };
        let write = self.inner.store.write().await?;
        let inserted =
            api_key::Entity::insert(row.clone().into_active_model()).exec_without_returning(write.db()).await;
        match inserted {
            Ok(_) => write.commit().await?,
            Err(error) => {
                write.rollback().await?;
                return Err(error.into());
            }
        }
        Ok((record(row), format!("{PREFIX}{id}_{secret}")))
    }

    /// Every key, newest first, without secrets.
    pub async fn keys(&self, principal: &Principal) -> Result<Vec<ApiKey>> {
        if !Environment::ALL.iter().any(|environment| principal.grants.is_admin(*environment)) {
            return Err(Error::Forbidden(format!(
                "`{}` administers no environment, so it may not list keys",
                principal.id
            )));
        }
        let rows = api_key::Entity::find()
            .order_by_desc(api_key::Column::CreatedAt)
            .all(self.inner.store.connection())
            .await?;
        Ok(rows.into_iter().map(record).collect())
    }

    /// Revokes a key at once: the next request with it is refused.
    pub async fn revoke_key(&self, principal: &Principal, id: &str) -> Result<ApiKey> {
        // Read and write in one write transaction: on SQLite a read left open on a connection
        // cannot be upgraded once another process (a live server) has committed.
        let tx = crate::engine::tx::Tx::begin(&self.inner).await?;
        let row = api_key::Entity::find_by_id(id.to_owned())
            .one(tx.db())
            .await?
            .ok_or_else(|| Error::NotFound(format!("there is no API key `{id}`")))?;
        let key = record(row.clone());
        may_manage(principal, &Grants::parse(&key.grants).map_err(Error::Internal)?)?;
        let mut active = row.into_active_model();
        active.revoked_at = Set(Some(Utc::now()));
        let row = active.update(tx.db()).await?;
        tx.commit().await?;
        Ok(record(row))
    }
}

impl Inner {
    async fn authenticate_key(&self, token: &str) -> Result<Principal> {
        let refused = || Error::Unauthenticated("the API key is not valid".to_owned());
        let rest = token.strip_prefix(PREFIX).ok_or_else(refused)?;
        let (id, secret) = rest.split_once('_').ok_or_else(refused)?;
        let row = api_key::Entity::find_by_id(id.to_owned()).one(self.store.connection()).await?.ok_or_else(refused)?;
        let matches: bool = hash(secret).as_bytes().ct_eq(row.secret_hash.as_bytes()).into();
        if !matches {
            return Err(refused());
        }
        if row.revoked_at.is_some() {
            return Err(Error::Unauthenticated("the API key was revoked".to_owned()));
        }
        let key = record(row);
        let grants = Grants::parse(&key.grants).map_err(Error::Internal)?;
        Ok(Principal::new(format!("key:{}", key.name), key.roles, grants))
    }

    fn authenticate_jwt(&self, token: &str) -> Result<Principal> {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, errors::ErrorKind};
        let Some(config) = &self.config.jwt else {
            return Err(Error::Unauthenticated(
                "the bearer token is neither an API key nor a JWT this server accepts".to_owned(),
            ));
        };
        let (key, algorithm) = match (&config.hs256_secret, &config.rs256_public_key) {
            (Some(secret), _) => (DecodingKey::from_secret(secret.as_bytes()), Algorithm::HS256),
            (None, Some(pem)) => (
                DecodingKey::from_rsa_pem(pem.as_bytes())
                    .map_err(|_| Error::Internal("the RS256 public key is not valid PEM".to_owned()))?,
                Algorithm::RS256,
            ),
            (None, None) => return Err(Error::Internal("JWT configured without a key".to_owned())),
        };
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
        }
        match &config.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        let claims = decode::<Claims>(token, &key, &validation)
            .map_err(|error| {
                Error::Unauthenticated(match error.kind() {
                    ErrorKind::ExpiredSignature => "the JWT has expired".to_owned(),
                    ErrorKind::InvalidSignature => "the JWT's signature is not valid".to_owned(),
                    ErrorKind::InvalidAlgorithm => {
                        "the JWT is signed with an algorithm this server does not accept".to_owned()
                    }
                    ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => {
                        "the JWT is for another issuer or audience".to_owned()
                    }
                    _ => "the JWT is not valid".to_owned(),
                })
            })?
            .claims;
        let grants = Grants::parse(&claims.grants)
            .map_err(|error| Error::Unauthenticated(format!("the JWT's grants: {error}")))?;
        Ok(Principal::new(format!("jwt:{}", claims.sub), claims.roles, grants))
    }
}
