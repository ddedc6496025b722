//! Atom feed parsing (JMA's `https://www.data.jma.go.jp/developer/xml/feed/*.xml`): the entries
//! with their telegram links. Pure; no I/O.

use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::NsReader;

const ATOM_NS: &[u8] = b"http://www.w3.org/2005/Atom";

/// Deepest element nesting accepted; Atom needs four.
const MAX_DEPTH: usize = 32;

/// One `<entry>` of a feed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedEntry {
    pub id: String,
    pub title: String,
    /// As written (JMA: `2024-01-01T07:10:20Z`).
    pub updated: String,
    /// The telegram's URL (`<link href>`), possibly relative to the feed.
    pub link: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("malformed feed XML at byte {position}: {message}")]
    Xml { position: u64, message: String },
    #[error("not an Atom feed: {0}")]
    NotAtom(String),
}

/// Which text field of an entry is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Id,
    Title,
    Updated,
}

/// Parser state: open element depth, the entry being read, the field collecting text.
#[derive(Default)]
struct State {
    depth: usize,
    entry: Option<FeedEntry>,
    field: Option<Field>,
    entries: Vec<FeedEntry>,
    root_seen: bool,
}

/// Parses an Atom feed into its entries, in document order. Entries without a link are skipped.
pub fn parse_feed(xml: &[u8]) -> Result<Vec<FeedEntry>, FeedError> {
    let mut reader = NsReader::from_reader(xml);
    let mut st = State::default();
    loop {
        let (atom, event) = match reader.read_resolved_event() {
            Ok((ns, event)) => (matches!(ns, ResolveResult::Bound(Namespace(n)) if n == ATOM_NS), event),
            Err(e) => return Err(xml_error(reader.error_position(), e)),
        };
        let pos = reader.buffer_position();
        match event {
            Event::Start(e) => {
                st.open(atom, &e, pos)?;
                st.depth += 1;
                if st.depth > MAX_DEPTH {
                    return Err(xml_error(pos, format!("elements nested deeper than {MAX_DEPTH} levels")));
                }
            }
            Event::Empty(e) => {
                st.open(atom, &e, pos)?;
                st.close();
            }
            Event::End(_) => {
                st.depth = st.depth.saturating_sub(1);
                st.close();
            }
            Event::Text(t) => st.text(&t.decode().map_err(|e| xml_error(pos, e))?, pos)?,
            Event::CData(c) => st.text(&c.decode().map_err(|e| xml_error(pos, e))?, pos)?,
            Event::GeneralRef(r) => st.text(&resolve_ref(&r, pos)?, pos)?,
            Event::Eof => return st.finish(pos),
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
}

impl State {
    /// An element opens at the current depth; `atom` when it is in the Atom namespace.
    fn open(&mut self, atom: bool, e: &BytesStart, pos: u64) -> Result<(), FeedError> {
        let local = e.local_name();
        match self.depth {
            0 if self.root_seen => return Err(xml_error(pos, "content after the root element")),
            0 if local.as_ref() == b"feed" && atom => self.root_seen = true,
            0 => {
                let name = String::from_utf8_lossy(e.name().into_inner()).into_owned();
                return Err(FeedError::NotAtom(format!("root element is <{name}>, expected <feed xmlns=\"http://www.w3.org/2005/Atom\">")));
            }
            1 if atom && local.as_ref() == b"entry" => self.entry = Some(FeedEntry::default()),
            2 if atom => self.entry_child(local.as_ref(), e, pos)?,
            _ => {}
        }
        Ok(())
    }

    /// A child of `<entry>`: starts collecting a text field, or reads a link.
    fn entry_child(&mut self, local: &[u8], e: &BytesStart, pos: u64) -> Result<(), FeedError> {
        let Some(entry) = self.entry.as_mut() else { return Ok(()) };
        self.field = match local {
            b"id" => Some(Field::Id),
            b"title" => Some(Field::Title),
            b"updated" => Some(Field::Updated),
            b"link" => {
                if entry.link.is_empty() && is_alternate(e, pos)? {
                    entry.link = attr(e, b"href", pos)?.unwrap_or_default().trim().to_string();
                }
                None
            }
            _ => None,
        };
        Ok(())
    }

    /// An element closes; `depth` is its own (0 for the root).
    fn close(&mut self) {
        match self.depth {
            2 => self.field = None,
            1 => {
                if let Some(entry) = self.entry.take() {
                    if !entry.link.is_empty() {
                        self.entries.push(trimmed(entry));
                    }
                }
            }
            _ => {}
        }
    }

    fn text(&mut self, text: &str, pos: u64) -> Result<(), FeedError> {
        if self.depth == 0 && !text.trim().is_empty() {
            return Err(xml_error(pos, "text outside the root element"));
        }
        let (Some(entry), Some(field)) = (self.entry.as_mut(), self.field) else { return Ok(()) };
        match field {
            Field::Id => entry.id.push_str(text),
            Field::Title => entry.title.push_str(text),
            Field::Updated => entry.updated.push_str(text),
        }
        Ok(())
    }

    fn finish(self, pos: u64) -> Result<Vec<FeedEntry>, FeedError> {
        if self.depth > 0 {
            return Err(xml_error(pos, "unexpected end of document: unclosed elements"));
        }
        if !self.root_seen {
            return Err(FeedError::NotAtom("empty document".into()));
        }
        Ok(self.entries)
    }
}

/// A `<link>` without `rel` or with `rel="alternate"` points at the entry's content.
fn is_alternate(e: &BytesStart, pos: u64) -> Result<bool, FeedError> {
    Ok(matches!(attr(e, b"rel", pos)?.as_deref(), None | Some("alternate")))
}

fn attr(e: &BytesStart, name: &[u8], pos: u64) -> Result<Option<String>, FeedError> {
    for a in e.attributes() {
        let a = a.map_err(|err| xml_error(pos, err))?;
        if a.key.local_name().as_ref() == name && a.key.prefix().is_none() {
            return Ok(Some(a.unescape_value().map_err(|err| xml_error(pos, err))?.into_owned()));
        }
    }
    Ok(None)
}

/// `&amp;`, `&#x41;` and the other predefined or character references.
fn resolve_ref(r: &BytesRef, pos: u64) -> Result<String, FeedError> {
    if let Some(ch) = r.resolve_char_ref().map_err(|e| xml_error(pos, e))? {
        return Ok(ch.to_string());
    }
    let name = r.decode().map_err(|e| xml_error(pos, e))?;
    match quick_xml::escape::resolve_predefined_entity(&name) {
        Some(s) => Ok(s.to_string()),
        None => Err(xml_error(pos, format!("undefined entity &{name};"))),
    }
}

fn trimmed(e: FeedEntry) -> FeedEntry {
    FeedEntry { id: e.id.trim().into(), title: e.title.trim().into(), updated: e.updated.trim().into(), link: e.link }
}

fn xml_error(position: u64, message: impl std::fmt::Display) -> FeedError {
    FeedError::Xml { position, message: message.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JMA: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" lang="ja">
  <title>高頻度（地震火山）</title>
  <subtitle>JMAXML publishing feed</subtitle>
  <updated>2024-01-01T07:10:25+09:00</updated>
  <id>https://www.data.jma.go.jp/developer/xml/feed/eqvol.xml</id>
  <link href="https://www.jma.go.jp/" rel="related"/>
  <link href="https://www.data.jma.go.jp/developer/xml/feed/eqvol.xml" rel="self"/>
  <rights type="html"><![CDATA[<a href="https://www.jma.go.jp/jma/kishou/info/coment.html">利用規約</a>]]></rights>
  <entry>
    <title>震度速報</title>
    <id>https://www.data.jma.go.jp/developer/xml/data/20240101071023_0_VXSE51_010000.xml</id>
    <updated>2024-01-01T07:10:20Z</updated>
    <author><name>気象庁</name></author>
    <link type="application/xml" href="https://www.data.jma.go.jp/developer/xml/data/20240101071023_0_VXSE51_010000.xml"/>
    <content type="text">【震度速報】令和６年１月１日１６時１０分ごろ、地震による強い揺れを感じました。</content>
  </entry>
  <entry>
    <title>噴火警報・予報</title>
    <id>urn:x-test:2</id>
    <updated>2024-01-01T06:00:00Z</updated>
    <author><name>気象庁</name></author>
    <link type="application/xml" href="https://example.jp/data?a=1&amp;b=2"/>
    <content type="text">&#x3010;噴火&#12305; &amp; more</content>
  </entry>
  <entry>
    <title>リンクなし</title>
    <id>urn:x-test:3</id>
    <updated>2024-01-01T05:00:00Z</updated>
  </entry>
</feed>"#;

    #[test]
    fn reads_jma_entries_in_document_order() {
        let entries = parse_feed(JMA.as_bytes()).unwrap();
        assert_eq!(entries.len(), 2, "the entry without a link is skipped");
        assert_eq!(
            entries[0],
            FeedEntry {
                id: "https://www.data.jma.go.jp/developer/xml/data/20240101071023_0_VXSE51_010000.xml".into(),
                title: "震度速報".into(),
                updated: "2024-01-01T07:10:20Z".into(),
                link: "https://www.data.jma.go.jp/developer/xml/data/20240101071023_0_VXSE51_010000.xml".into(),
            }
        );
        assert_eq!(entries[1].title, "噴火警報・予報");
        assert_eq!(entries[1].link, "https://example.jp/data?a=1&b=2", "attribute entities unescaped");
    }

    #[test]
    fn feed_links_are_not_entries_and_rel_is_honoured() {
        let xml = r#"<feed xmlns="http://www.w3.org/2005/Atom"><link href="self.xml" rel="self"/>
            <entry><id>a</id><link rel="related" href="no.xml"/><link href="yes.xml" rel="alternate"/></entry></feed>"#;
        let entries = parse_feed(xml.as_bytes()).unwrap();
        assert_eq!(entries.iter().map(|e| e.link.as_str()).collect::<Vec<_>>(), ["yes.xml"]);
    }

    #[test]
    fn empty_feed_has_no_entries() {
        let xml = r#"<?xml version="1.0"?><a:feed xmlns:a="http://www.w3.org/2005/Atom"><a:title>x</a:title></a:feed>"#;
        assert_eq!(parse_feed(xml.as_bytes()).unwrap(), vec![]);
    }

    #[test]
    fn malformed_feeds_are_errors() {
        let cases: &[(&str, &str)] = &[
            ("", "empty document"),
            ("<html><body>503</body></html>", "root element is <html>"),
            (r#"<feed><entry/></feed>"#, "root element is <feed>"),
            (r#"<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>a</id>"#, "unexpected end"),
            (r#"<feed xmlns="http://www.w3.org/2005/Atom"><entry></feed>"#, "malformed feed XML"),
            (r#"<feed xmlns="http://www.w3.org/2005/Atom"></feed><feed xmlns="http://www.w3.org/2005/Atom"/>"#, "after the root"),
            (r#"<feed xmlns="http://www.w3.org/2005/Atom"><entry><title>&bogus;</title></entry></feed>"#, "undefined entity"),
            (r#"<feed xmlns="http://www.w3.org/2005/Atom"></feed>trailing"#, "outside the root"),
        ];
        for (xml, want) in cases {
            let err = parse_feed(xml.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(want), "{xml:?}: {err}");
        }
    }
}
