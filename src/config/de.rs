//! Deserializers that accept a value either typed (TOML) or as a string (environment variables
//! are always strings).

use serde::{Deserialize, Deserializer};
use std::str::FromStr;

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrString {
    Number(i64),
    Text(String),
}

pub fn boolean<'de, D>(deserializer: D) -> Result<bool, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum BoolOrString {
        Bool(bool),
        Text(String),
    }
    match BoolOrString::deserialize(deserializer)? {
        BoolOrString::Bool(b) => Ok(b),
        BoolOrString::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(serde::de::Error::custom(format!(
                "`{s}` is not a boolean (true or false)"
            ))),
        },
    }
}

pub fn number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr + TryFrom<i64>,
    <T as FromStr>::Err: std::fmt::Display,
{
    match NumberOrString::deserialize(deserializer)? {
        NumberOrString::Number(n) => {
            T::try_from(n).map_err(|_| serde::de::Error::custom(format!("{n} is out of range")))
        }
        NumberOrString::Text(s) => s
            .trim()
            .parse::<T>()
            .map_err(|e| serde::de::Error::custom(format!("`{s}` is not a valid number: {e}"))),
    }
}
