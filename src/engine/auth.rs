//! Authentication: API keys (random, 256 bits, shown once, stored as SHA-256 hashes) and JWT
//! bearer tokens (HS256 secret or RS256 public key), the same on every protocol. A key is
//! `orgata_<id>_<secret>`; the id finds the row, the secret is compared in constant time.
//! Secrets never reach logs, history or error messages.

use base64::Engine as _;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::engine::access::Grants;
use crate::engine::error::{Error, Result};
use crate::engine::types::{Environment, Principal};
use crate::engine::{Engine, Inner};
use crate::store;
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
    /// Seconds of clock skew tolerated on `exp` and `nbf`.
    pub leeway_seconds: u64,
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
            .field("leeway_seconds", &self.leeway_seconds)
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

/// The longest key name, role name or grant, in bytes.
const MAX_NAME_BYTES: usize = 100;
/// The most roles, and grants, one key holds.
const MAX_KEY_LIST: usize = 64;

/// A key's roles are names as a package declares them: 1 to 100 bytes of letters, digits, `_`,
/// `-`, `.` and `:`; at most 64 of them.
fn check_roles(roles: &[String]) -> Result<()> {
    if roles.len() > MAX_KEY_LIST {
        return Err(Error::BadInput(format!("a key holds at most {MAX_KEY_LIST} roles, not {}", roles.len())));
    }
    for role in roles {
        let valid = !role.is_empty()
            && role.len() <= MAX_NAME_BYTES
            && role.chars().all(|character| character.is_ascii_alphanumeric() || "_-.:".contains(character));
        if !valid {
            return Err(Error::BadInput(format!(
                "role `{}` is not a role name: 1 to {MAX_NAME_BYTES} bytes of letters, digits, `_`, `-`, `.` and `:`",
                crate::engine::types::bounded(role)
            )));
        }
    }
    Ok(())
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
        Ok(store::api_keys::any_active(self.inner.store.connection()).await?)
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
        if grants.len() > MAX_KEY_LIST || grants.iter().any(|grant| grant.len() > MAX_NAME_BYTES) {
            return Err(Error::BadInput(format!(
                "a key has at most {MAX_KEY_LIST} grants of at most {MAX_NAME_BYTES} bytes each"
            )));
        }
        let parsed = Grants::parse(grants).map_err(Error::BadInput)?;
        if name.trim().is_empty() || name.len() > MAX_NAME_BYTES {
            return Err(Error::BadInput(format!("a key needs a name of 1 to {MAX_NAME_BYTES} bytes")));
        }
        check_roles(roles)?;
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
        crate::engine::tx::Tx::run(&self.inner, async |tx| Ok(store::api_keys::insert(tx.db(), row.clone()).await?))
            .await?;
        Ok((record(row), format!("{PREFIX}{id}_{secret}")))
    }

    /// The keys `principal` may manage (those whose every granted environment it administers),
    /// newest first, without secrets. A key reaching further is not listed: its name, roles and
    /// grants are not the business of an administrator of fewer environments.
    pub async fn keys(&self, principal: &Principal) -> Result<Vec<ApiKey>> {
        if !Environment::ALL.iter().any(|environment| principal.grants.is_admin(*environment)) {
            return Err(Error::Forbidden(format!(
                "`{}` administers no environment, so it may not list keys",
                principal.id
            )));
        }
        let rows = store::api_keys::all(self.inner.store.connection()).await?;
        Ok(rows
            .into_iter()
            .map(record)
            .filter(|key| Grants::parse(&key.grants).is_ok_and(|grants| may_manage(principal, &grants).is_ok()))
            .collect())
    }

    /// Revokes a key at once: the next request with it is refused.
    pub async fn revoke_key(&self, principal: &Principal, id: &str) -> Result<ApiKey> {
        // Read and write in one write transaction: on SQLite a read left open on a connection
        // cannot be upgraded once another process (a live server) has committed.
        crate::engine::tx::Tx::run(&self.inner, async |tx| {
            let mut row = store::api_keys::find(tx.db(), id)
                .await?
                .ok_or_else(|| Error::NotFound(format!("there is no API key `{id}`")))?;
            let key = record(row.clone());
            may_manage(principal, &Grants::parse(&key.grants).map_err(Error::Internal)?)?;
            let now = Utc::now();
            store::api_keys::revoke(tx.db(), id, now).await?;
            row.revoked_at = Some(now);
            Ok(record(row))
        })
        .await
    }
}

impl Inner {
    async fn authenticate_key(&self, token: &str) -> Result<Principal> {
        let refused = || Error::Unauthenticated("the API key is not valid".to_owned());
        let rest = token.strip_prefix(PREFIX).ok_or_else(refused)?;
        let (id, secret) = rest.split_once('_').ok_or_else(refused)?;
        let row = store::api_keys::find(self.store.connection(), id).await?.ok_or_else(refused)?;
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
        // A configured issuer or audience is required, not merely checked when present: a
        // token without `iss` or `aud` was not minted for this server.
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &config.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation.validate_nbf = true;
        validation.leeway = config.leeway_seconds;
        let claims = decode::<Claims>(token, &key, &validation)
            .map_err(|error| {
                Error::Unauthenticated(match error.kind() {
                    ErrorKind::ExpiredSignature => "the JWT has expired".to_owned(),
                    ErrorKind::ImmatureSignature => "the JWT is not valid yet (`nbf` is in the future)".to_owned(),
                    ErrorKind::MissingRequiredClaim(claim) => format!("the JWT has no `{claim}` claim"),
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
