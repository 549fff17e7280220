//! Broker URLs: `switchyard://user:password@host:port/vhost`.

use crate::error::Error;

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub vhost: String,
}

impl BrokerAddress {
    /// Parses a URL. The path is the vhost, percent-decoded (`/` or nothing
    /// is the default vhost `/`; `%2F` spells a slash inside a name).
    /// A missing user and password mean `guest:guest`, a missing port 5673.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let url = url::Url::parse(text).map_err(|e| Error::InvalidUrl(format!("{text}: {e}")))?;
        if url.scheme() != "switchyard" {
            return Err(Error::InvalidUrl(format!(
                "{text}: the scheme must be switchyard://, not {}://",
                url.scheme()
            )));
        }
        let host = url
            .host_str()
            .ok_or_else(|| Error::InvalidUrl(format!("{text}: no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let path = url.path().strip_prefix('/').unwrap_or(url.path());
        Ok(BrokerAddress {
            host,
            port: url.port().unwrap_or(switchyard_protocol::DEFAULT_PORT),
            user: match url.username() {
                "" => "guest".into(),
                user => decode(user),
            },
            password: url.password().map(decode).unwrap_or_else(|| "guest".into()),
            vhost: if path.is_empty() {
                "/".into()
            } else {
                decode(path)
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_user_password_host_port_and_vhost() {
        let a = BrokerAddress::parse("switchyard://alice:s%40cret@127.0.0.1:7000/prod").unwrap();
        assert_eq!(
            a,
            BrokerAddress {
                host: "127.0.0.1".into(),
                port: 7000,
                user: "alice".into(),
                password: "s@cret".into(),
                vhost: "prod".into()
            }
        );
        let d = BrokerAddress::parse("switchyard://localhost").unwrap();
        assert_eq!(
            (d.user.as_str(), d.port, d.vhost.as_str()),
            ("guest", 5673, "/")
        );
        let v6 = BrokerAddress::parse("switchyard://u:p@[::1]:1/%2Fa").unwrap();
        assert_eq!((v6.host.as_str(), v6.vhost.as_str()), ("::1", "/a"));
        assert!(BrokerAddress::parse("amqp://localhost").is_err());
        assert!(BrokerAddress::parse("not a url").is_err());
    }
}
