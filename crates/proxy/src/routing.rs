//! Model routing: `provider/model`, an alias, or a bare name exactly one provider lists.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::config::{ModelAlias, ProviderConfig};
use crate::providers::{self, Provider};

/// One provider and the model name it is asked for.
#[derive(Clone)]
pub struct Target {
    pub provider: Arc<dyn Provider>,
    pub model: String,
}

/// Where a request model leads: the primary target first, then its fallbacks.
#[derive(Clone)]
pub struct Route {
    pub targets: Vec<Target>,
}

/// A configuration mistake, with the path of the offending key.
pub type RoutingError = gatecast_telemetry::FieldError;

pub struct Router {
    providers: BTreeMap<String, Arc<dyn Provider>>,
    aliases: BTreeMap<String, Route>,
    /// Bare model names listed by exactly one provider.
    bare: HashMap<String, Target>,
    /// `provider/model` for every listed model, for `/v1/models`.
    listed: Vec<String>,
}

impl Router {
    pub fn new(
        providers: &BTreeMap<String, ProviderConfig>,
        models: &BTreeMap<String, ModelAlias>,
    ) -> Result<Self, RoutingError> {
        let mut built = BTreeMap::new();
        for (name, config) in providers {
            if name.is_empty() || name.contains('/') {
                return Err(RoutingError {
                    path: format!("providers.{name}"),
                    message: "provider names must be non-empty and contain no `/`".into(),
                });
            }
            let provider = providers::build(name, config)?;
            built.insert(name.clone(), provider);
        }
        let mut claims: HashMap<String, Vec<String>> = HashMap::new();
        let mut listed = Vec::new();
        for (name, config) in providers {
            for model in &config.models {
                claims.entry(model.clone()).or_default().push(name.clone());
                listed.push(format!("{name}/{model}"));
            }
        }
        let bare = claims
            .into_iter()
            .filter(|(_, owners)| owners.len() == 1)
            .filter_map(|(model, owners)| {
                let provider = built.get(&owners[0])?.clone();
                Some((model.clone(), Target { provider, model }))
            })
            .collect();
        let mut router = Router {
            providers: built,
            aliases: BTreeMap::new(),
            bare,
            listed,
        };
        for (alias, spec) in models {
            let primary = router
                .providers
                .get(&spec.provider)
                .cloned()
                .ok_or_else(|| RoutingError {
                    path: format!("models.{alias}.provider"),
                    message: format!("unknown provider `{}`", spec.provider),
                })?;
            let mut targets = vec![Target {
                provider: primary,
                model: spec.model.clone(),
            }];
            for (i, fallback) in spec.fallbacks.iter().enumerate() {
                let target = router.qualified(fallback).ok_or_else(|| RoutingError {
                    path: format!("models.{alias}.fallbacks[{i}]"),
                    message: format!(
                        "`{fallback}` is not `provider/model` with a configured provider"
                    ),
                })?;
                targets.push(target);
            }
            router.aliases.insert(alias.clone(), Route { targets });
        }
        Ok(router)
    }

    /// Aliases win over `provider/model`, which wins over bare names: an operator's explicit
    /// alias must never be shadowed by a provider's model list.
    pub fn resolve(&self, model: &str) -> Option<Route> {
        if let Some(route) = self.aliases.get(model) {
            return Some(route.clone());
        }
        if let Some(target) = self.qualified(model) {
            return Some(Route {
                targets: vec![target],
            });
        }
        self.bare.get(model).map(|t| Route {
            targets: vec![t.clone()],
        })
    }

    fn qualified(&self, model: &str) -> Option<Target> {
        let (provider, name) = model.split_once('/')?;
        let provider = self.providers.get(provider)?;
        (!name.is_empty()).then(|| Target {
            provider: provider.clone(),
            model: name.to_owned(),
        })
    }

    /// The bare names that route (listed by exactly one provider, and not an alias, which
    /// would win), sorted.
    pub fn bare_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .bare
            .keys()
            .filter(|m| !self.aliases.contains_key(*m))
            .cloned()
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Every alias, then `provider/model` for every listed model.
    pub fn model_ids(&self) -> Vec<String> {
        self.aliases
            .keys()
            .cloned()
            .chain(self.listed.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn providers() -> BTreeMap<String, ProviderConfig> {
        toml::from_str(
            r#"
            [a]
            kind = "mock"
            models = ["shared", "only-a"]
            [b]
            kind = "openai"
            base_url = "http://127.0.0.1:1/v1"
            models = ["shared"]
            "#,
        )
        .unwrap()
    }

    fn router(models: &str) -> Result<Router, RoutingError> {
        Router::new(&providers(), &toml::from_str(models).unwrap())
    }

    fn route_of(r: &Router, m: &str) -> Option<Vec<String>> {
        r.resolve(m).map(|r| {
            r.targets
                .iter()
                .map(|t| format!("{}/{}", t.provider.name(), t.model))
                .collect()
        })
    }

    #[test]
    fn resolves_each_form() {
        let r = router(
            r#"
            [fast]
            provider = "a"
            model = "m1"
            fallbacks = ["b/m2"]
            "#,
        )
        .unwrap();
        assert_eq!(
            route_of(&r, "fast"),
            Some(vec!["a/m1".into(), "b/m2".into()])
        );
        assert_eq!(
            route_of(&r, "b/org/model"),
            Some(vec!["b/org/model".into()])
        );
        assert_eq!(route_of(&r, "only-a"), Some(vec!["a/only-a".into()]));
        assert_eq!(
            route_of(&r, "shared"),
            None,
            "a bare name two providers list is ambiguous"
        );
        assert_eq!(route_of(&r, "nope"), None);
        assert_eq!(route_of(&r, "c/x"), None);
        assert_eq!(
            r.model_ids(),
            vec!["fast", "a/shared", "a/only-a", "b/shared"]
        );
    }

    #[test]
    fn bare_names_that_route_are_listed_unless_an_alias_has_the_name() {
        let r = router("[fast]\nprovider = \"a\"\nmodel = \"m1\"").unwrap();
        assert_eq!(r.bare_ids(), vec!["only-a"]);
        let r = router("[only-a]\nprovider = \"b\"\nmodel = \"m1\"").unwrap();
        assert!(r.bare_ids().is_empty());
    }

    #[test]
    fn config_mistakes_name_their_path() {
        let e = router("[x]\nprovider = \"zz\"\nmodel = \"m\"")
            .err()
            .unwrap();
        assert_eq!(e.path, "models.x.provider");
        let e = router("[x]\nprovider = \"a\"\nmodel = \"m\"\nfallbacks = [\"nope\"]")
            .err()
            .unwrap();
        assert_eq!(e.path, "models.x.fallbacks[0]");
    }
}
