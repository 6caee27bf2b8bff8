"""Built-in company directory for the Leadspace emulator and the demo-data generator.

A few thousand plausible companies are generated deterministically from `SEED`: the same list on
every machine and every run, so demo data, tests and screenshots agree.

API
---
Company                      frozen dataclass (see fields below); `.website` = "https://www.<domain>"
COMPANIES: list[Company]     the directory, `N_COMPANIES` entries, index == position
company_for_index(i)         COMPANIES[i % N_COMPANIES] (demo profiles at directory companies)
unknown_company_for_index(i) a Company-shaped record that is NOT in the directory and never matches
                             it (neither name nor domain); `.index` is -1 - i, ls_company_id is ""
normalize_name(s) / normalize_domain(s) / normalize_country(s)
match_company(name, website=None, city=None, state=None, country=None, postal_code=None)
    -> (Company, confidence) or (None, None); confidence is "HIGH" | "MEDIUM" | "LOW" | "VERY LOW"

Matching policy (emulator policy; Leadspace does not publish its rules):
- Names are normalised: lower case, accents and punctuation dropped, "&" -> "and", legal suffixes
  (Inc, LLC, Ltd, GmbH, ...) removed. "Exact" = equal normalised names. "Fuzzy" = the best
  candidate sharing a token or a 4-letter token prefix whose similarity (difflib ratio) >= 0.85 or
  whose token sets overlap >= 2/3.
- Websites are reduced to their registrable host (scheme, "www.", path and port dropped).
- Location "agrees" when the country matches and the city or the postal code matches; it
  "disagrees" when a country is given and differs.

    exact name + website of the same company              HIGH
    exact name + agreeing location (no website agreement) HIGH
    exact name only (or website of another company)       MEDIUM
    fuzzy name + website of the same company              MEDIUM
    website only (name does not match that company)       LOW
    fuzzy name only / fuzzy name + agreeing location      LOW
    any of the above with a disagreeing location          one level lower (LOW -> VERY LOW)
    nothing                                               no match ("Not Enriched")
"""
from __future__ import annotations

import difflib
import hashlib
import random
import re
import unicodedata
from dataclasses import asdict, dataclass
from functools import lru_cache

SEED = 20260315
N_COMPANIES = 3000
FUZZY_RATIO_MIN = 0.85
FUZZY_JACCARD_MIN = 2 / 3
FUZZY_CANDIDATES_MAX = 12


@dataclass(frozen=True, slots=True)
class Company:
    index: int
    ls_company_id: str
    name: str
    domain: str
    industry: str
    sub_industry: str
    sic: str
    naics: str
    employees_exact: int
    employees_range: str
    revenue_exact: int
    revenue_range: str
    street: str
    city: str
    state: str
    country: str  # full English name, e.g. "United States"
    country_code: str  # ISO 3166-1 alpha-2
    postal_code: str

    @property
    def website(self) -> str:
        return f"https://www.{self.domain}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["website"] = self.website
        return d


# (industry, sub_industry, SIC, NAICS, revenue per employee in USD)
_INDUSTRIES: list[tuple[str, str, str, str, int]] = [
    ("Software", "Enterprise Software", "7372", "511210", 260_000),
    ("Software", "Computer Programming Services", "7371", "541511", 180_000),
    ("Internet", "E-commerce", "5961", "454110", 320_000),
    ("Financial Services", "Commercial Banking", "6021", "522110", 400_000),
    ("Financial Services", "Insurance Agencies", "6411", "524210", 300_000),
    ("Financial Services", "Investment Advice", "6282", "523940", 450_000),
    ("Manufacturing", "Industrial Machinery", "3559", "333249", 240_000),
    ("Manufacturing", "Semiconductors", "3674", "334413", 380_000),
    ("Manufacturing", "Motor Vehicle Parts", "3714", "336390", 280_000),
    ("Healthcare", "Hospitals", "8062", "622110", 150_000),
    ("Healthcare", "Medical Devices", "3841", "339112", 310_000),
    ("Healthcare", "Pharmaceutical Preparations", "2834", "325412", 520_000),
    ("Retail", "Apparel Stores", "5651", "458110", 170_000),
    ("Retail", "Grocery Stores", "5411", "445110", 140_000),
    ("Professional Services", "Management Consulting", "8742", "541611", 200_000),
    ("Professional Services", "Legal Services", "8111", "541110", 230_000),
    ("Professional Services", "Accounting", "8721", "541211", 160_000),
    ("Education", "Colleges and Universities", "8221", "611310", 120_000),
    ("Education", "E-learning", "8299", "611710", 140_000),
    ("Transportation and Logistics", "Trucking", "4213", "484121", 190_000),
    ("Transportation and Logistics", "Freight Forwarding", "4731", "488510", 260_000),
    ("Energy", "Solar Power Generation", "4911", "221114", 600_000),
    ("Energy", "Oil and Gas Extraction", "1311", "211120", 900_000),
    ("Media", "Newspaper Publishing", "2711", "513110", 150_000),
    ("Media", "Advertising Agencies", "7311", "541810", 180_000),
    ("Construction", "Commercial Building Construction", "1542", "236220", 330_000),
    ("Hospitality", "Hotels and Motels", "7011", "721110", 90_000),
    ("Hospitality", "Restaurants", "5812", "722511", 60_000),
    ("Telecommunications", "Wireless Carriers", "4812", "517112", 450_000),
]

# Industry flavour words appended to some names, keyed by industry.
_FLAVOUR = {
    "Software": ["Software", "Systems", "Labs", "Technologies", "Digital"],
    "Internet": ["Online", "Commerce", "Digital", "Web"],
    "Financial Services": ["Capital", "Financial", "Partners", "Insurance", "Bank"],
    "Manufacturing": ["Industries", "Manufacturing", "Works", "Components"],
    "Healthcare": ["Health", "Medical", "Pharma", "Care"],
    "Retail": ["Stores", "Market", "Outfitters", "Supply"],
    "Professional Services": ["Consulting", "Advisors", "Group", "Associates"],
    "Education": ["Academy", "Learning", "Institute", "Education"],
    "Transportation and Logistics": ["Logistics", "Freight", "Transport", "Shipping"],
    "Energy": ["Energy", "Power", "Solar", "Resources"],
    "Media": ["Media", "Press", "Studios", "Publishing"],
    "Construction": ["Builders", "Construction", "Contracting"],
    "Hospitality": ["Hotels", "Hospitality", "Kitchens", "Resorts"],
    "Telecommunications": ["Telecom", "Networks", "Wireless", "Communications"],
}

_FIRST = (
    "Northwind Bluewater Silverline Redwood Brightpath Ironbridge Clearwater Summit Keystone "
    "Harborview Evergreen Stonegate Riverbend Oakridge Highland Westfield Eastgate Goldcrest "
    "Suncoast Pinecrest Lakeshore Maplewood Cedar Granite Falcon Osprey Heron Kestrel Aurora "
    "Polaris Meridian Horizon Pioneer Frontier Beacon Lighthouse Anchor Compass Vanguard Sterling "
    "Crescent Orchard Prairie Canyon Glacier Harbor Ember Cobalt Indigo Amber Crimson Azure "
    "Juniper Willow Aspen Birch Copper Quartz Onyx Sapphire Emerald Tidewater Windward Starling "
    "Bluebird Fairway Hillcrest Brookside Ridgeline Sandstone Lodestar Northstar Seabright Trailhead"
).split()
_SECOND = (
    "Analytics Dynamics Solutions Ventures Holdings Networks Partners Works Labs Group Industries "
    "Collective Foundry Forge Point Bridge Gate Path Peak Field Stream Wave Grid Core Logic Link "
    "Craft Scale Signal Vector Pulse Harbor Trust Union Alliance Brothers Mills Ridge Springs"
).split()

_LEGAL = {
    "US": ["Inc.", "LLC", "Corp.", "Co."],
    "GB": ["Ltd", "PLC", "Limited"],
    "DE": ["GmbH", "AG"],
    "FR": ["SAS", "SA"],
    "CA": ["Inc.", "Ltd."],
    "AU": ["Pty Ltd"],
    "NL": ["B.V.", "N.V."],
    "IN": ["Pvt Ltd", "Limited"],
    "ES": ["S.L.", "S.A."],
    "JP": ["K.K.", "Co., Ltd."],
}
_TLD = {"US": "com", "GB": "co.uk", "DE": "de", "FR": "fr", "CA": "ca", "AU": "com.au",
        "NL": "nl", "IN": "in", "ES": "es", "JP": "jp"}
_COUNTRY_NAMES = {"US": "United States", "GB": "United Kingdom", "DE": "Germany", "FR": "France",
                  "CA": "Canada", "AU": "Australia", "NL": "Netherlands", "IN": "India",
                  "ES": "Spain", "JP": "Japan"}
# Country weights: mostly US, then the UK and Germany.
_COUNTRY_WEIGHTS = [("US", 45), ("GB", 12), ("DE", 9), ("FR", 7), ("CA", 7), ("AU", 6),
                    ("NL", 4), ("IN", 4), ("ES", 3), ("JP", 3)]

# (city, state/region, postal-code pattern) per country; "#" = digit, "@" = capital letter.
_CITIES: dict[str, list[tuple[str, str, str]]] = {
    "US": [("San Francisco", "CA", "941##"), ("Austin", "TX", "787##"), ("New York", "NY", "100##"),
           ("Chicago", "IL", "606##"), ("Seattle", "WA", "981##"), ("Boston", "MA", "021##"),
           ("Denver", "CO", "802##"), ("Atlanta", "GA", "303##"), ("Miami", "FL", "331##"),
           ("Columbus", "OH", "432##"), ("Phoenix", "AZ", "850##"), ("Portland", "OR", "972##")],
    "GB": [("London", "England", "EC# #@@"), ("Manchester", "England", "M# #@@"),
           ("Edinburgh", "Scotland", "EH# #@@"), ("Bristol", "England", "BS# #@@"),
           ("Cardiff", "Wales", "CF## #@@")],
    "DE": [("Berlin", "Berlin", "101##"), ("Munich", "Bavaria", "803##"),
           ("Hamburg", "Hamburg", "200##"), ("Frankfurt", "Hesse", "603##")],
    "FR": [("Paris", "Ile-de-France", "750##"), ("Lyon", "Auvergne-Rhone-Alpes", "6900#"),
           ("Toulouse", "Occitanie", "310##")],
    "CA": [("Toronto", "ON", "M5V #@#"), ("Vancouver", "BC", "V6B #@#"), ("Montreal", "QC", "H3B #@#")],
    "AU": [("Sydney", "NSW", "2000"), ("Melbourne", "VIC", "3000"), ("Brisbane", "QLD", "4000")],
    "NL": [("Amsterdam", "North Holland", "101# @@"), ("Rotterdam", "South Holland", "301# @@")],
    "IN": [("Bengaluru", "Karnataka", "5600##"), ("Mumbai", "Maharashtra", "4000##")],
    "ES": [("Madrid", "Madrid", "280##"), ("Barcelona", "Catalonia", "080##")],
    "JP": [("Tokyo", "Tokyo", "100-00##"), ("Osaka", "Osaka", "530-00##")],
}
_STREETS = ["Main Street", "Market Street", "Harbor Road", "Station Road", "High Street", "Park Avenue",
            "Mill Lane", "Innovation Drive", "Commerce Way", "King Street", "Bridge Street",
            "Riverside Drive", "Oak Avenue", "Church Road", "Industrial Parkway"]

_EMPLOYEE_RANGES = [(10, "1-10"), (50, "11-50"), (200, "51-200"), (500, "201-500"),
                    (1000, "501-1,000"), (5000, "1,001-5,000"), (10000, "5,001-10,000")]
_REVENUE_RANGES = [(1_000_000, "$0 - $1M"), (10_000_000, "$1M - $10M"), (50_000_000, "$10M - $50M"),
                   (100_000_000, "$50M - $100M"), (250_000_000, "$100M - $250M"),
                   (500_000_000, "$250M - $500M"), (1_000_000_000, "$500M - $1B")]


def employees_range(n: int) -> str:
    for upper, label in _EMPLOYEE_RANGES:
        if n <= upper:
            return label
    return "10,001+"


def revenue_range(n: int) -> str:
    for upper, label in _REVENUE_RANGES:
        if n < upper:
            return label
    return "$1B+"


def _fill_pattern(rng: random.Random, pattern: str) -> str:
    out = []
    for ch in pattern:
        if ch == "#":
            out.append(str(rng.randrange(10)))
        elif ch == "@":
            out.append("ABDEFGHJLNPQRSTUWXYZ"[rng.randrange(20)])
        else:
            out.append(ch)
    return "".join(out)


# --- normalisation ---------------------------------------------------------------------------

_LEGAL_TOKENS = {
    "inc", "incorporated", "llc", "ltd", "limited", "corp", "corporation", "co", "company", "plc",
    "gmbh", "ag", "sas", "sa", "sl", "bv", "nv", "pty", "pvt", "kk", "the", "llp", "lp",
}
_NON_WORD = re.compile(r"[^a-z0-9]+")


def _ascii_lower(s: str) -> str:
    return unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode("ascii").lower()


def _name_tokens(name: str) -> tuple[str, ...]:
    s = _ascii_lower(name).replace("&", " and ")
    # "B.V." / "K.K." -> "bv" / "kk" before splitting on punctuation
    s = re.sub(r"\b([a-z])\.([a-z])\.", r"\1\2", s)
    tokens = [t for t in _NON_WORD.split(s) if t]
    while tokens and tokens[-1] in _LEGAL_TOKENS:
        tokens.pop()
    if tokens and tokens[0] == "the":
        tokens = tokens[1:]
    return tuple(tokens)


def normalize_name(name: str | None) -> str:
    """Company name -> comparable form ("Northwind Analytics, Inc." -> "northwind analytics")."""
    if not name:
        return ""
    return " ".join(_name_tokens(name))


def normalize_domain(website: str | None) -> str:
    """Website or URL -> bare host ("https://www.Acme.com/about" -> "acme.com")."""
    if not website:
        return ""
    s = website.strip().lower()
    s = re.sub(r"^[a-z][a-z0-9+.-]*://", "", s)
    s = s.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    s = s.rsplit("@", 1)[-1].split(":", 1)[0].strip(".")
    if s.startswith("www."):
        s = s[4:]
    return s


_COUNTRY_ALIASES = {
    "us": "US", "usa": "US", "united states": "US", "united states of america": "US", "america": "US",
    "uk": "GB", "gb": "GB", "united kingdom": "GB", "great britain": "GB", "england": "GB",
    "scotland": "GB", "wales": "GB", "de": "DE", "germany": "DE", "deutschland": "DE",
    "fr": "FR", "france": "FR", "ca": "CA", "canada": "CA", "au": "AU", "australia": "AU",
    "nl": "NL", "netherlands": "NL", "the netherlands": "NL", "holland": "NL", "in": "IN",
    "india": "IN", "es": "ES", "spain": "ES", "espana": "ES", "jp": "JP", "japan": "JP",
}


def normalize_country(country: str | None) -> str:
    """Country name or code -> ISO-2 when known, else the lower-cased input ("" for none)."""
    if not country:
        return ""
    key = " ".join(_NON_WORD.split(_ascii_lower(country))).strip()
    return _COUNTRY_ALIASES.get(key, key.upper() if len(key) == 2 else key)


# --- generation ------------------------------------------------------------------------------


def _generate(seed: int, count: int) -> list[Company]:
    rng = random.Random(seed)
    countries = [c for c, w in _COUNTRY_WEIGHTS for _ in range(w)]
    seen_names: set[str] = set()
    seen_domains: set[str] = set()
    out: list[Company] = []
    attempts = 0
    while len(out) < count:
        attempts += 1
        if attempts > count * 50:  # pragma: no cover - vocabulary too small for `count`
            raise RuntimeError("company vocabulary exhausted")
        industry, sub_industry, sic, naics, rev_per_emp = _INDUSTRIES[rng.randrange(len(_INDUSTRIES))]
        cc = countries[rng.randrange(len(countries))]
        first = _FIRST[rng.randrange(len(_FIRST))]
        shape = rng.random()
        if shape < 0.45:
            core = [first, _SECOND[rng.randrange(len(_SECOND))]]
        elif shape < 0.8:
            flavours = _FLAVOUR[industry]
            core = [first, flavours[rng.randrange(len(flavours))]]
        else:
            core = [first, _SECOND[rng.randrange(len(_SECOND))], _FLAVOUR[industry][0]]
        norm = normalize_name(" ".join(core))
        if norm in seen_names or len(set(norm.split())) < len(core):
            continue
        domain = f"{''.join(w.lower() for w in core[:2])}.{_TLD[cc]}"
        if domain in seen_domains:
            continue
        seen_names.add(norm)
        seen_domains.add(domain)
        legal = _LEGAL[cc][rng.randrange(len(_LEGAL[cc]))]
        name = f"{' '.join(core)} {legal}" if rng.random() < 0.7 else " ".join(core)
        # employees: log-uniform 3 .. 60,000
        employees = int(round(3 * (20000 ** rng.random())))
        revenue = int(round(employees * rev_per_emp * (0.6 + 0.8 * rng.random()), -3))
        city, state, postal_pattern = _CITIES[cc][rng.randrange(len(_CITIES[cc]))]
        street = f"{rng.randrange(1, 2500)} {_STREETS[rng.randrange(len(_STREETS))]}"
        index = len(out)
        ls_id = hashlib.sha1(f"{seed}:{index}:{norm}".encode()).hexdigest()[:24]
        out.append(Company(
            index=index, ls_company_id=ls_id, name=name, domain=domain, industry=industry,
            sub_industry=sub_industry, sic=sic, naics=naics, employees_exact=employees,
            employees_range=employees_range(employees), revenue_exact=revenue,
            revenue_range=revenue_range(revenue), street=street, city=city, state=state,
            country=_COUNTRY_NAMES[cc], country_code=cc, postal_code=_fill_pattern(rng, postal_pattern),
        ))
    return out


COMPANIES: list[Company] = _generate(SEED, N_COMPANIES)

_BY_NAME: dict[str, Company] = {normalize_name(c.name): c for c in COMPANIES}
_BY_DOMAIN: dict[str, Company] = {c.domain: c for c in COMPANIES}
_BY_KEY: dict[str, list[int]] = {}
for _c in COMPANIES:
    for _t in set(_name_tokens(_c.name)):
        for _k in {_t, _t[:4]}:
            _BY_KEY.setdefault(_k, []).append(_c.index)


def company_for_index(i: int) -> Company:
    """A directory company (cycles through COMPANIES)."""
    return COMPANIES[i % N_COMPANIES]


# Syllables for names that share no token (nor 4-letter prefix) with the directory vocabulary.
_SYLL_A = ["zor", "vex", "quil", "tra", "myx", "jub", "kel", "xan", "plo", "dru", "yev", "gno"]
_SYLL_B = ["avi", "ondo", "elix", "umba", "irra", "oska", "eeta", "ulon", "axis", "ivva"]


def unknown_company_for_index(i: int) -> Company:
    """A company that is not in the directory (for demo profiles that must not match)."""
    rng = random.Random(SEED * 31 + i)
    cc = [c for c, _ in _COUNTRY_WEIGHTS][i % len(_COUNTRY_WEIGHTS)]
    w1 = (_SYLL_A[rng.randrange(len(_SYLL_A))] + _SYLL_B[rng.randrange(len(_SYLL_B))]).capitalize()
    w2 = (_SYLL_A[rng.randrange(len(_SYLL_A))] + _SYLL_B[rng.randrange(len(_SYLL_B))]).capitalize()
    city, state, pattern = _CITIES[cc][rng.randrange(len(_CITIES[cc]))]
    employees = int(round(3 * (2000 ** rng.random())))
    return Company(
        index=-1 - i, ls_company_id="", name=f"{w1} {w2} {_LEGAL[cc][0]}",
        domain=f"{w1.lower()}{w2.lower()}{i}.{_TLD[cc]}", industry="", sub_industry="", sic="",
        naics="", employees_exact=employees, employees_range=employees_range(employees),
        revenue_exact=0, revenue_range="", street=f"{rng.randrange(1, 999)} {_STREETS[i % len(_STREETS)]}",
        city=city, state=state, country=_COUNTRY_NAMES[cc], country_code=cc,
        postal_code=_fill_pattern(rng, pattern),
    )


# --- matching --------------------------------------------------------------------------------

_LEVELS = ["HIGH", "MEDIUM", "LOW", "VERY LOW"]


@lru_cache(maxsize=65536)
def _fuzzy_lookup(norm: str) -> Company | None:
    tokens = norm.split()
    if not tokens:
        return None
    votes: dict[int, int] = {}
    for t in tokens:
        for k in {t, t[:4]}:
            for idx in _BY_KEY.get(k, ()):
                votes[idx] = votes.get(idx, 0) + 1
    if not votes:
        return None
    ranked = sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))[:FUZZY_CANDIDATES_MAX]
    qset = set(tokens)
    best: tuple[float, int] | None = None
    for idx, _ in ranked:
        cand = normalize_name(COMPANIES[idx].name)
        cset = set(cand.split())
        jaccard = len(qset & cset) / len(qset | cset)
        ratio = difflib.SequenceMatcher(None, norm, cand).ratio()
        if ratio >= FUZZY_RATIO_MIN or jaccard >= FUZZY_JACCARD_MIN:
            score = max(ratio, jaccard)
            if best is None or score > best[0]:
                best = (score, idx)
    return COMPANIES[best[1]] if best else None


def _location_verdict(c: Company, city: str | None, country: str | None, postal_code: str | None) -> int:
    """+1 agrees, -1 disagrees, 0 unknown / not enough to say."""
    cc = normalize_country(country)
    if cc and cc != c.country_code:
        return -1
    city_ok = bool(city) and _ascii_lower(city).strip() == _ascii_lower(c.city)
    postal_ok = bool(postal_code) and postal_code.replace(" ", "").upper() == c.postal_code.replace(" ", "").upper()
    if cc and (city_ok or postal_ok):
        return 1
    return 0


@lru_cache(maxsize=131072)  # many profiles share a company: same inputs, same answer
def match_company(
    name: str | None,
    website: str | None = None,
    city: str | None = None,
    state: str | None = None,
    country: str | None = None,
    postal_code: str | None = None,
) -> tuple[Company | None, str | None]:
    """Find the directory company for an input record and the match confidence (see module doc)."""
    del state  # states are too inconsistently written to help; city/postal/country decide
    norm = normalize_name(name)
    domain = normalize_domain(website)
    by_domain = _BY_DOMAIN.get(domain) if domain else None
    exact = _BY_NAME.get(norm) if norm else None
    if exact is not None:
        company, level = exact, 1  # MEDIUM
        if by_domain is exact:
            level = 0
        else:
            loc = _location_verdict(exact, city, country, postal_code)
            if loc > 0 and by_domain is None:
                level = 0
            elif loc < 0:
                level += 1
            return company, _LEVELS[level]
        if _location_verdict(company, city, country, postal_code) < 0:
            level += 1
        return company, _LEVELS[level]
    fuzzy = _fuzzy_lookup(norm) if norm else None
    if fuzzy is not None and by_domain is fuzzy:
        company, level = fuzzy, 1
    elif by_domain is not None:
        company, level = by_domain, 2
    elif fuzzy is not None:
        company, level = fuzzy, 2
    else:
        return None, None
    if _location_verdict(company, city, country, postal_code) < 0:
        level = min(level + 1, 3)
    return company, _LEVELS[level]
