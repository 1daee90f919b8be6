//! Query parameters as Docker reads them: `1`/`true`/`0`/`false` booleans, repeated keys,
//! and the `filters` JSON.

use hako_engine::filters::Filters;

use crate::error::{ApiError, ApiResult};

/// The decoded query string.
#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses `raw` (the part after `?`).
    pub fn parse(raw: Option<&str>) -> Query {
        Query {
            pairs: url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        }
    }

    /// The last value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Docker's boolean: absent → `default`; `0`, `false`, `no` (any case) and empty →
    /// false; anything else → true.
    pub fn bool(&self, key: &str, default: bool) -> bool {
        match self.get(key) {
            None => default,
            Some(v) => !matches!(v.to_ascii_lowercase().as_str(), "" | "0" | "false" | "no"),
        }
    }

    /// An integer, or 400.
    pub fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad(format!("invalid value for {key}: {v:?}"))),
        }
    }

    /// The `filters` parameter.
    pub fn filters(&self) -> ApiResult<Filters> {
        Ok(Filters::from_json(self.get("filters").unwrap_or(""))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_booleans_and_repeats() {
        let q = Query::parse(Some(
            "all=1&size=false&names=a&names=b%3Ac&x=&filters=%7B%22label%22%3A%5B%22a%22%5D%7D",
        ));
        assert!(q.bool("all", false));
        assert!(!q.bool("size", true));
        assert!(!q.bool("x", true));
        assert!(q.bool("missing", true));
        assert_eq!(q.all("names"), ["a", "b:c"]);
        assert_eq!(q.filters().unwrap().get("label"), ["a"]);
        assert!(Query::parse(Some("t=x")).int("t").is_err());
    }
}
