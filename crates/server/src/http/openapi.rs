//! The OpenAPI document: generated from the handlers' annotations as the router is
//! built (`api_routes`), so a route cannot exist without being documented; completed
//! with what no annotation holds (the deployment's permission names, the refusal of
//! unknown query parameters).

use keyward_core::credential::ServiceScope;
use keyward_core::permissions::Catalogue;
use keyward_core::verify::VerifyCode;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, OpenApi, Type};
use utoipa::{Modify, OpenApi as _};
use utoipa_axum::router::OpenApiRouter;

use super::documented;
use super::query_params;
use super::routes::{
    admin, api_keys, catalogue, credentials, forward_auth, leaks, ops, secret_scanning, verify,
    webhooks,
};
use super::state::AppState;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "keyward",
        description = "Self-hosted API key service: users manage their keys; services verify them.",
        license(name = "Apache-2.0")
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "api-keys", description = "A user's own keys (JWT from the platform's identity provider)"),
        (name = "verify", description = "Key verification for the platform's services (keys.verify)"),
        (name = "permissions", description = "The permission catalogue (JWT or service token)"),
        (name = "admin", description = "Administration for the platform's services (a credential with the route's scope, or the service token)"),
        (name = "credentials", description = "The platform's services' own credentials, each limited to its scopes (credentials.manage)"),
        (name = "leaks", description = "Keys found where they should not be: reported by anyone holding one"),
        (name = "webhooks", description = "Signed, retried events for every key change, delivered as the Standard Webhooks specification says (webhooks.manage)"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, format, description) in [
            (
                "user_jwt",
                Some("JWT"),
                "A JWT from the platform's identity provider; `sub` is the user id.",
            ),
            (
                "service_token",
                None,
                "A service credential (kwsvc_…) holding the scope the route names, or the \
                 static service token (KEYWARD_ADMIN_TOKEN), which holds every scope.",
            ),
            (
                "metrics_token",
                None,
                "The metrics token (KEYWARD_METRICS_TOKEN), where one is set.",
            ),
        ] {
            let mut scheme = Http::new(HttpAuthScheme::Bearer);
            scheme.bearer_format = format.map(str::to_owned);
            scheme.description = Some(description.to_owned());
            components.add_security_scheme(name, SecurityScheme::Http(scheme));
        }
    }
}

/// Every documented route, with its documentation: each resource's own list, tagged
/// and documented with the resource's callers.
pub(super) fn api_routes() -> OpenApiRouter<AppState> {
    let resources = [
        (api_keys::TAG, api_keys::CALLERS, api_keys::routes()),
        (verify::TAG, verify::CALLERS, verify::routes()),
        (catalogue::TAG, catalogue::CALLERS, catalogue::routes()),
        (
            forward_auth::TAG,
            forward_auth::CALLERS,
            forward_auth::routes(),
        ),
        (admin::TAG, admin::CALLERS, admin::routes()),
        (
            credentials::TAG,
            credentials::CALLERS,
            credentials::routes(),
        ),
        (webhooks::TAG, webhooks::CALLERS, webhooks::routes()),
        (leaks::TAG, leaks::CALLERS, leaks::routes()),
        (
            secret_scanning::TAG,
            secret_scanning::CALLERS,
            secret_scanning::routes(),
        ),
        (ops::TAG, ops::CALLERS, ops::routes()),
    ];
    resources.into_iter().fold(
        OpenApiRouter::with_openapi(ApiDoc::openapi()),
        |all, (tag, callers, routes)| all.merge(documented::resource(tag, callers, routes)),
    )
}

/// The OpenAPI document, with the permission names of `catalogue` as an enum.
pub fn openapi(catalogue: &Catalogue) -> OpenApi {
    let (_, mut doc) = api_routes().split_for_parts();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let permission = ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("A permission name from this deployment's catalogue."))
        .enum_values(Some(catalogue.names()))
        .build();
    // A verdict code: the names and meanings of keyward_core's one declaration.
    let codes: Vec<String> = VerifyCode::all()
        .map(|code| format!("- `{code}`: {}", code.meaning()))
        .collect();
    let code = ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(format!(
            "Why a key passed or failed. A client must take a code it does not know \
             as a refusal (newer keywards may add codes).\n\n{}",
            codes.join("\n")
        )))
        .enum_values(Some(VerifyCode::all().map(VerifyCode::as_str)))
        .build();
    // A service credential's scope: the names and meanings of their one declaration.
    let scopes: Vec<String> = ServiceScope::ALL
        .iter()
        .map(|scope| format!("- `{scope}`: {}", scope.meaning()))
        .collect();
    let scope = ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(format!(
            "What a service credential may do.\n\n{}",
            scopes.join("\n")
        )))
        .enum_values(Some(ServiceScope::ALL.map(ServiceScope::as_str)))
        .build();
    let schemas = &mut doc.components.get_or_insert_with(Default::default).schemas;
    schemas.insert("ScopeName".to_owned(), scope.into());
    schemas.insert("Permission".to_owned(), permission.into());
    schemas.insert("VerifyCodeName".to_owned(), code.into());
    query_params::document(&mut doc);
    doc
}

#[cfg(test)]
mod tests {
    //! The query parameter rule (`query_params`) as it stands on this document.

    use super::super::query_params::{QueryParams, REFUSAL};

    fn rules() -> QueryParams {
        let catalogue = keyward_core::permissions::Catalogue::default();
        QueryParams::from_openapi(&super::openapi(&catalogue))
    }

    fn detail(result: Result<(), crate::http::error::ApiError>) -> String {
        let error = result.expect_err("refused");
        assert_eq!(error.status(), axum::http::StatusCode::BAD_REQUEST);
        format!("{error:?}")
    }

    #[test]
    fn a_route_takes_the_parameters_its_entry_lists() {
        let rules = rules();
        rules
            .check("/api/api-keys/{id}/usage", "from=a&to=b")
            .unwrap();
        rules.check("/api/admin/events", "limit=5&after=x").unwrap();
        rules.check("/api/auth", "permissions=READ_GRAPH").unwrap();
        // Percent-encoded names are the names the handler reads.
        rules.check("/api/api-keys/{id}/usage", "%66rom=a").unwrap();
        rules.check("/api/api-keys", "").unwrap();
    }

    #[test]
    fn any_other_parameter_is_refused_naming_it_and_what_the_route_takes() {
        let rules = rules();
        let said = detail(rules.check("/api/api-keys/{id}/usage", "limit=100000000"));
        assert!(
            said.contains(r#"unknown query parameter \"limit\""#),
            "{said}"
        );
        assert!(said.contains("takes from, granularity, to"), "{said}");
        let said = detail(rules.check("/api/api-keys", "x=1"));
        assert!(said.contains("takes no query parameter"), "{said}");
        detail(rules.check("/api/auth", "Permissions=A"));
        // Routes the document does not list (the console's pages) take none.
        detail(rules.check("/console/{name}", "v=2"));
        detail(rules.check("/healthz", "verbose"));
    }

    #[test]
    fn every_operation_documents_the_refusal() {
        let catalogue = keyward_core::permissions::Catalogue::default();
        let doc = super::openapi(&catalogue);
        let json = serde_json::to_value(&doc).unwrap();
        let mut operations = 0;
        for (path, item) in json["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let refusal = operation["responses"]["400"]["description"]
                    .as_str()
                    .unwrap_or_default()
                    .to_lowercase();
                assert!(refusal.contains(REFUSAL), "{method} {path}: {refusal:?}");
                operations += 1;
            }
        }
        assert!(operations > 25);
    }

    #[test]
    fn the_query_under_envoys_auth_path_is_the_clients_own() {
        rules()
            .check("/api/auth/{*original_path}", "page=2&anything=else")
            .unwrap();
    }

    #[test]
    fn the_documents_verdict_codes_are_the_cores_every_one() {
        let catalogue = keyward_core::permissions::Catalogue::default();
        let doc = serde_json::to_value(super::openapi(&catalogue)).unwrap();
        let schema = &doc["components"]["schemas"]["VerifyCodeName"];
        let names: Vec<&str> = schema["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let codes: Vec<_> = keyward_core::verify::VerifyCode::all().collect();
        assert_eq!(names, codes.iter().map(|c| c.as_str()).collect::<Vec<_>>());
        let description = schema["description"].as_str().unwrap();
        for code in codes {
            assert!(description.contains(code.meaning()), "{code}");
        }
        let code = &doc["components"]["schemas"]["VerifyResponse"]["properties"]["code"];
        assert_eq!(code["$ref"], "#/components/schemas/VerifyCodeName");
    }
}
