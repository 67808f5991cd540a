//! kcat's `-f` output format for `sluice consume`: parsing the format string once,
//! then rendering each record with it.
//!
//! Tokens: `%t` topic, `%p` partition, `%o` offset, `%k` key, `%s` value, `%h`
//! headers (`k=v` comma-separated), `%T` timestamp in ms (-1 without one), `%K`
//! key length and `%S` value length (-1 for null), `%%` a percent sign; escapes
//! `\n`, `\t`, `\r`, `\\`. A null key or value prints as nothing, as in kcat.

use super::errors::CliError;

/// One record as the renderer sees it.
pub struct Record<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Key,
    Value,
    Headers,
    Timestamp,
    KeyLength,
    ValueLength,
}

/// A parsed format string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format(Vec<Token>);

impl Format {
    pub fn parse(text: &str) -> Result<Format, CliError> {
        let mut tokens = Vec::new();
        let mut literal = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            let token = match c {
                '%' => match chars.next() {
                    Some('t') => Token::Topic,
                    Some('p') => Token::Partition,
                    Some('o') => Token::Offset,
                    Some('k') => Token::Key,
                    Some('s') => Token::Value,
                    Some('h') => Token::Headers,
                    Some('T') => Token::Timestamp,
                    Some('K') => Token::KeyLength,
                    Some('S') => Token::ValueLength,
                    Some('%') => {
                        literal.push(b'%');
                        continue;
                    }
                    other => {
                        return Err(CliError::Usage(format!(
                            "unknown format token %{} in {text:?} (known: %t %p %o %k %s %h %T %K %S %%)",
                            other.map(String::from).unwrap_or_default()
                        )));
                    }
                },
                '\\' => {
                    let escaped = match chars.next() {
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some('r') => '\r',
                        Some('\\') => '\\',
                        other => {
                            return Err(CliError::Usage(format!(
                                "unknown escape \\{} in {text:?} (known: \\n \\t \\r \\\\)",
                                other.map(String::from).unwrap_or_default()
                            )));
                        }
                    };
                    literal.extend_from_slice(escaped.to_string().as_bytes());
                    continue;
                }
                other => {
                    let mut buf = [0u8; 4];
                    literal.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
                    continue;
                }
            };
            if !literal.is_empty() {
                tokens.push(Token::Literal(std::mem::take(&mut literal)));
            }
            tokens.push(token);
        }
        if !literal.is_empty() {
            tokens.push(Token::Literal(literal));
        }
        Ok(Format(tokens))
    }

    /// Appends `record` rendered with this format to `out`.
    pub fn render(&self, record: &Record<'_>, out: &mut Vec<u8>) {
        let length = |bytes: Option<&[u8]>| bytes.map_or(-1, |b| b.len() as i64);
        for token in &self.0 {
            match token {
                Token::Literal(bytes) => out.extend_from_slice(bytes),
                Token::Topic => out.extend_from_slice(record.topic.as_bytes()),
                Token::Partition => out.extend_from_slice(record.partition.to_string().as_bytes()),
                Token::Offset => out.extend_from_slice(record.offset.to_string().as_bytes()),
                Token::Key => out.extend_from_slice(record.key.unwrap_or_default()),
                Token::Value => out.extend_from_slice(record.value.unwrap_or_default()),
                Token::Headers => {
                    for (i, (key, value)) in record.headers.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(key.as_bytes());
                        out.push(b'=');
                        out.extend_from_slice(value.unwrap_or_default());
                    }
                }
                Token::Timestamp => {
                    out.extend_from_slice(record.timestamp.unwrap_or(-1).to_string().as_bytes())
                }
                Token::KeyLength => {
                    out.extend_from_slice(length(record.key).to_string().as_bytes())
                }
                Token::ValueLength => {
                    out.extend_from_slice(length(record.value).to_string().as_bytes())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record<'static> {
        Record {
            topic: "orders",
            partition: 2,
            offset: 41,
            timestamp: Some(1_700_000_000_123),
            key: Some(b"k1"),
            value: Some(b"hello"),
            headers: vec![("a", Some(b"1")), ("b", None)],
        }
    }

    fn render(format: &str, record: &Record<'_>) -> String {
        let mut out = Vec::new();
        Format::parse(format).unwrap().render(record, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_token_renders_its_field() {
        assert_eq!(
            render("%t %p %o %k %s %h %T %K %S\\n", &record()),
            "orders 2 41 k1 hello a=1,b= 1700000000123 2 5\n"
        );
    }

    #[test]
    fn escapes_and_literals_pass_through() {
        assert_eq!(render("[%k]\\t100%%\\\\é", &record()), "[k1]\t100%\\é");
        assert_eq!(render("", &record()), "");
    }

    #[test]
    fn null_key_and_value_print_nothing_and_length_minus_one() {
        let null = Record {
            key: None,
            value: None,
            timestamp: None,
            headers: Vec::new(),
            ..record()
        };
        assert_eq!(render("<%k><%s><%h> %K %S %T", &null), "<><><> -1 -1 -1");
    }

    #[test]
    fn unknown_tokens_and_escapes_are_usage_errors() {
        for bad in ["%x", "abc%", "\\q", "\\"] {
            let error = Format::parse(bad).unwrap_err();
            assert_eq!(error.name(), "INVALID_ARGUMENT", "{bad}");
        }
    }
}
