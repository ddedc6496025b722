//! Japanese-first pages with English available: templates carry both texts inline and
//! `Tr::p` picks one.

use anpi_core::Lang;
use axum::http::HeaderMap;

#[derive(Debug, Clone, Copy, Default)]
pub struct Tr(pub Lang);

impl Tr {
    pub fn p<'a>(&self, ja: &'a str, en: &'a str) -> &'a str {
        self.0.pick(ja, en)
    }
    pub fn lang(&self) -> Lang {
        self.0
    }
    pub fn code(&self) -> &'static str {
        self.0.code()
    }
    pub fn is_en(&self) -> bool {
        self.0 == Lang::En
    }

    /// `?lang=` wins, then the `anpi_lang` cookie, then Japanese.
    pub fn from_request(headers: &HeaderMap, query_lang: Option<&str>) -> Tr {
        if let Some(l) = query_lang.and_then(Lang::parse) {
            return Tr(l);
        }
        let cookie = crate::session::cookie(headers, "anpi_lang");
        Tr(cookie.as_deref().and_then(Lang::parse).unwrap_or_default())
    }
}
