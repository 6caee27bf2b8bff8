"""Profile import, the pure part: standard attributes, header synonyms, column mapping, type detection.

Nothing here touches files or the database. storage/profiles.py reads the file with DuckDB and
services/profiles.py ties both together.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Iterable

from core.errors import InputError

KEY_COLUMN = "customer_id"
TARGET_EXTRA = "extra"      # keep the column as an extra attribute x_<slug>
TARGET_IGNORE = "ignore"    # leave the column out
MODES = ("upsert", "replace")

# Standard profile attributes a file column can be mapped to (column name -> label), in display order.
STANDARD_ATTRIBUTES: dict[str, str] = {
    "email": "Email",
    "first_name": "First name",
    "last_name": "Last name",
    "company_name": "Company name",
    "company_website": "Company website",
    "phone": "Phone",
    "street": "Street",
    "city": "City",
    "state": "State",
    "country": "Country",
    "postal_code": "Postal code",
    "street2": "Secondary street",
    "city2": "Secondary city",
    "state2": "Secondary state",
    "country2": "Secondary country",
    "postal_code2": "Secondary postal code",
    "email_opt_out": "Email opt-out",
}
BOOLEAN_STANDARD = frozenset({"email_opt_out"})

# Header synonyms per target, compared after :func:`normalize_header` (so "E-Mail", "e_mail" and
# "EMail" are all "email"). "address2"/"address line 2" are deliberately absent: they usually mean the
# second line of the same address, not a secondary address.
SYNONYMS: dict[str, tuple[str, ...]] = {
    KEY_COLUMN: ("customer_id", "customerid", "customer", "cust_id", "customer_number", "customer_no",
                 "customer_key", "id", "contact_id", "person_id", "user_id", "profile_id", "crm_id",
                 "record_id", "account_id", "uid", "key"),
    "email": ("email", "email_address", "e_mail", "mail", "primary_email", "work_email", "contact_email",
              "business_email", "emailaddress"),
    "first_name": ("first_name", "firstname", "first", "given_name", "forename", "fname", "prenom", "vorname"),
    "last_name": ("last_name", "lastname", "last", "surname", "family_name", "lname", "nom", "nachname"),
    "company_name": ("company", "company_name", "organization", "organisation", "organization_name",
                     "organisation_name", "org", "employer", "account", "account_name", "business_name",
                     "firm", "firma"),
    "company_website": ("company_website", "website", "web_site", "website_url", "web", "url", "domain",
                        "company_domain", "company_url", "homepage", "site"),
    "phone": ("phone", "phone_number", "telephone", "telephone_number", "tel", "mobile", "mobile_phone",
              "cell", "cell_phone", "work_phone", "business_phone"),
    "street": ("street", "street_address", "address", "address1", "address_1", "address_line_1",
               "address_line1", "addr1", "street1", "street_1", "primary_street", "primary_address"),
    "city": ("city", "town", "locality", "address_city", "primary_city", "city1", "city_1"),
    "state": ("state", "province", "region", "state_province", "state_or_province", "state_code",
              "address_state", "primary_state", "state1", "county"),
    "country": ("country", "country_code", "country_name", "country_region", "nation", "address_country",
                "primary_country", "country1"),
    "postal_code": ("postal_code", "postcode", "post_code", "zip", "zip_code", "zipcode", "postal",
                    "primary_postal_code", "postal_code1", "zip1"),
    "street2": ("street2", "street_2", "secondary_street", "secondary_address", "alternate_street",
                "alt_street", "second_street"),
    "city2": ("city2", "city_2", "secondary_city", "alternate_city", "alt_city"),
    "state2": ("state2", "state_2", "secondary_state", "alternate_state", "alt_state", "province2"),
    "country2": ("country2", "country_2", "secondary_country", "alternate_country", "alt_country"),
    "postal_code2": ("postal_code2", "postal_code_2", "postcode2", "zip2", "zip_2", "zip_code2",
                     "secondary_postal_code", "secondary_zip", "alternate_postal_code", "alt_zip"),
    "email_opt_out": ("email_opt_out", "opt_out", "optout", "opted_out", "email_optout", "unsubscribed",
                      "email_unsubscribed", "do_not_email", "donotemail", "has_opted_out_of_email",
                      "email_opted_out", "no_email"),
}

TRUE_VALUES = frozenset({"true", "t", "yes", "y", "1", "on"})
FALSE_VALUES = frozenset({"false", "f", "no", "n", "0", "off"})

# Catalogue types and the SQL type an extra column of that type is stored as.
SQL_TYPES = {"text": "VARCHAR", "number": "DOUBLE", "date": "DATE", "timestamp": "TIMESTAMP", "boolean": "BOOLEAN"}
CATALOGUE_TYPE = {"text": "text", "number": "number", "date": "date", "timestamp": "date", "boolean": "boolean"}

# The same patterns serve Python (preview) and DuckDB's RE2 (whole-file detection at import).
# A column becomes a number only if every value survives the trip text -> DOUBLE -> text: a plain
# decimal (optional minus; no plus sign, exponent or leading zero, which phone numbers, product codes
# like 1E5 and postal codes carry), with at most MAX_EXACT_DIGITS significant digits (more do not fit
# a DOUBLE: 9007199254740993 would become ...992), and trailing zeros after the point only in a
# fixed-point column (every fraction with the same number of decimals: prices 19.90 and 5.00, but not
# versions 1.10 and 1.2). Dates and timestamps must be real ones (2024-02-31 stays text).
NUMBER_PATTERN = r"-?(0|[1-9]\d*)(\.\d+)?"
TRAILING_ZERO_PATTERN = r"-?\d+\.\d*0"
MAX_EXACT_DIGITS = 15          # DBL_DIG: every decimal with this many significant digits round-trips
DATE_PATTERN = r"\d{4}-\d{2}-\d{2}"
TIMESTAMP_PATTERN = r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?"
_NUMBER = re.compile(NUMBER_PATTERN)
_TRAILING_ZERO = re.compile(TRAILING_ZERO_PATTERN)
_DATE = re.compile(DATE_PATTERN)
_TIMESTAMP = re.compile(TIMESTAMP_PATTERN)
MAX_SLUG_LEN = 48


class ProfileImportError(InputError, ValueError):
    """The file or the mapping cannot be imported; the message says why in plain words."""


def normalize_header(header: str) -> str:
    """Lower-case ASCII letters and digits only: 'E-Mail Address' -> 'emailaddress'."""
    text = unicodedata.normalize("NFKD", str(header or "")).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]", "", text.lower())


_SYNONYM_INDEX: dict[str, str] = {}
for _target, _names in SYNONYMS.items():
    for _name in _names:
        _SYNONYM_INDEX.setdefault(normalize_header(_name), _target)


def suggest_target(header: str) -> str | None:
    """The standard attribute (or KEY_COLUMN) a header most likely means, or None."""
    return _SYNONYM_INDEX.get(normalize_header(header))


def suggest_key(headers: list[str]) -> str | None:
    """The header that most likely holds the customer id (None if nothing looks like one)."""
    for header in headers:
        if suggest_target(header) == KEY_COLUMN:
            return header
    return None


def suggest_mapping(headers: list[str], key_column: str | None = None) -> dict[str, str]:
    """header -> target (a standard attribute, TARGET_EXTRA or TARGET_IGNORE); first match wins."""
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for header in headers:
        target = suggest_target(header)
        if target in STANDARD_ATTRIBUTES and target not in taken:
            mapping[header] = target
            taken.add(target)
        elif header == key_column or target == KEY_COLUMN:
            # The key is stored as customer_id; other id-like columns are kept as extras.
            mapping[header] = TARGET_IGNORE if header == key_column else TARGET_EXTRA
        else:
            mapping[header] = TARGET_EXTRA
    return mapping


def slugify(header: str) -> str:
    """An identifier-safe slug: [a-z0-9_], never empty (non-Latin headers get a stable hash)."""
    text = unicodedata.normalize("NFKD", str(header or "")).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:MAX_SLUG_LEN].strip("_")
    if not slug:
        slug = "col_" + hashlib.sha1(str(header).encode("utf-8")).hexdigest()[:8]
    return slug


def extra_column_names(headers: Iterable[str]) -> dict[str, str]:
    """header -> unique column name x_<slug> (duplicates get _2, _3 ...)."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for header in headers:
        base = "x_" + slugify(header)
        name, n = base, 2
        while name in used:
            name, n = f"{base}_{n}", n + 1
        used.add(name)
        out[header] = name
    return out


def parse_bool(value) -> bool | None:
    """true/false/yes/no/1/0/y/n (any case); None for blank; ValueError for anything else."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text == "":
        return None
    if text in TRUE_VALUES:
        return True
    if text in FALSE_VALUES:
        return False
    raise ValueError(f"{value!r} is not a yes/no value")


def significant_digits(number_text: str) -> int:
    """Digits that carry the value of a plain decimal: `-0.00120` -> 3 (`120`)."""
    return len(number_text.replace("-", "").replace(".", "").lstrip("0"))


def is_exact_number(text: str) -> bool:
    """A plain decimal that a DOUBLE holds exactly (see NUMBER_PATTERN)."""
    return bool(_NUMBER.fullmatch(text)) and significant_digits(text) <= MAX_EXACT_DIGITS


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return bool(_DATE.fullmatch(text))


def _is_timestamp(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return bool(_TIMESTAMP.fullmatch(text))


def detect_type(values: Iterable) -> str:
    """text | number | date | timestamp | boolean from sample values (blanks ignored).

    Never loses information: a type other than text only when every value converts and back exactly.
    """
    seen = [str(v).strip() for v in values if v is not None and str(v).strip() != ""]
    lowered = [v.lower() for v in seen]
    numbers = [v for v in seen if is_exact_number(v)]
    scales = [len(v) - v.index(".") - 1 for v in numbers if "." in v]
    return type_from_counts(
        non_blank=len(seen),
        numbers=len(numbers),
        trailing_zeros=sum(1 for v in numbers if _TRAILING_ZERO.fullmatch(v)),
        fraction_scales=(min(scales), max(scales)) if scales else None,
        dates=sum(1 for v in seen if _is_date(v)),
        timestamps=sum(1 for v in seen if _is_timestamp(v)),
        booleans=sum(1 for v in lowered if v in TRUE_VALUES or v in FALSE_VALUES),
        zero_one=sum(1 for v in lowered if v in ("0", "1")),
    )


def type_from_counts(*, non_blank: int, numbers: int, dates: int, timestamps: int, booleans: int, zero_one: int,
                     trailing_zeros: int = 0, fraction_scales: tuple[int, int] | None = None) -> str:
    """The type every non-blank value fits (counts of values matching each test); text otherwise.

    `numbers` counts exact numbers (is_exact_number); `trailing_zeros` those with a fraction ending in
    0, `fraction_scales` the (fewest, most) decimals among those with a fraction.
    """
    if non_blank == 0:
        return "text"
    if booleans == non_blank and zero_one < non_blank:
        return "boolean"
    if numbers == non_blank:
        fixed_point = fraction_scales is None or fraction_scales[0] == fraction_scales[1]
        if trailing_zeros == 0 or fixed_point:
            return "number"
        return "text"   # 1.10 next to 1.2: the zero means something (a version), a DOUBLE would drop it
    if dates == non_blank:
        return "date"
    if timestamps == non_blank:
        return "timestamp"
    return "text"


@dataclass
class ColumnInfo:
    """One column of the file as previewed."""
    position: int
    header: str
    detected_type: str          # text | number | date | timestamp | boolean
    native_type: str = "VARCHAR"  # the SQL type the reader produced (VARCHAR for CSV)


@dataclass
class FilePreview:
    path: str
    file_name: str
    file_format: str            # csv | parquet
    columns: list[ColumnInfo]
    rows: list[dict]            # first rows, header -> value
    delimiter: str | None = None
    encoding: str | None = None
    suggested_key: str | None = None
    suggested_mapping: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def headers(self) -> list[str]:
        return [c.header for c in self.columns]


@dataclass
class ImportPlan:
    """What the user chose: the key column, header -> target, replace or upsert, and (optionally) the
    type of new extra attributes (header -> text | number | date | timestamp | boolean; others are
    detected over the whole file)."""
    key_column: str
    mapping: dict[str, str]
    mode: str = "upsert"
    pad_short_rows: bool = False
    types: dict[str, str] = field(default_factory=dict)

    def validate(self, headers: list[str]) -> None:
        if self.mode not in MODES:
            raise ProfileImportError(f"Unknown import mode {self.mode!r}; choose upsert or replace.")
        if not self.key_column:
            raise ProfileImportError("Choose the column that holds the customer ID.")
        if self.key_column not in headers:
            raise ProfileImportError(
                f"The key column {self.key_column!r} is not in the file. Its columns are: "
                + ", ".join(repr(h) for h in headers[:20]) + ". If they all run together, the file may use "
                "a delimiter other than comma, semicolon, tab or pipe.")
        unknown = [h for h in self.mapping if h not in headers]
        if unknown:
            raise ProfileImportError(f"The mapping names columns that are not in the file: {', '.join(unknown[:5])}.")
        for header, kind in self.types.items():
            if header not in headers:
                raise ProfileImportError(f"A type was chosen for {header!r}, which is not a column of the file.")
            if kind not in SQL_TYPES:
                raise ProfileImportError(f"Unknown type {kind!r} for column {header!r}; choose one of "
                                         + ", ".join(SQL_TYPES) + ".")
        by_target: dict[str, list[str]] = {}
        for header, target in self.mapping.items():
            if target not in STANDARD_ATTRIBUTES and target not in (TARGET_EXTRA, TARGET_IGNORE):
                raise ProfileImportError(f"Unknown target {target!r} for column {header!r}.")
            if target in STANDARD_ATTRIBUTES:
                by_target.setdefault(target, []).append(header)
        clashes = {t: hs for t, hs in by_target.items() if len(hs) > 1}
        if clashes:
            target, hs = next(iter(clashes.items()))
            raise ProfileImportError(
                f"{STANDARD_ATTRIBUTES[target]} is mapped from more than one column ({', '.join(hs)}); pick one.")

    def target_for(self, header: str) -> str:
        if header == self.key_column and header not in self.mapping:
            return TARGET_IGNORE
        return self.mapping.get(header, TARGET_EXTRA)


@dataclass
class ImportResult:
    file_name: str
    mode: str
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    removed: int = 0            # replace mode: previous profiles not in the new file
    extra_attributes_added: list[str] = field(default_factory=list)   # catalogue keys
    warnings: list[str] = field(default_factory=list)
    import_id: int | None = None

    def summary(self) -> str:
        parts = [_count(self.rows_read, "row") + " read", _count(self.inserted, "new profile"),
                 f"{self.updated:,} updated"]
        if self.mode == "replace":
            parts.append(_count(self.removed, "previous profile") + " removed")
        if self.extra_attributes_added:
            parts.append(_count(len(self.extra_attributes_added), "new attribute"))
        return "Imported " + self.file_name + ": " + ", ".join(parts) + "."


def _count(n: int, noun: str) -> str:
    """'1 new profile', '2 new profiles'."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def format_examples(items: list, total: int, noun: str) -> str:
    """'rows 2, 5, 9 and 12 more' style lists for error messages."""
    shown = ", ".join(str(i) for i in items)
    more = total - len(items)
    return f"{noun} {shown}" + (f" and {more:,} more" if more > 0 else "")
