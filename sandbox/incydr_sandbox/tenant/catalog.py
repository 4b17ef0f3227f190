"""Static vocabulary of the synthetic tenant: risk indicators, exfiltration vectors, watchlists and
alert rules. Tenant-specific ids (rules, watchlists, lessons) are derived from the seed elsewhere."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

SEVERITY_NAMES = ("NO_RISK", "LOW", "MODERATE", "HIGH", "CRITICAL")
# Alerts and file events say NO_RISK_INDICATED where sessions say 0 / NO_RISK.
RISK_SEVERITY_NAMES = ("NO_RISK_INDICATED", "LOW", "MODERATE", "HIGH", "CRITICAL")


def severity_of(score: int) -> int:
    """Risk-score bands (DESIGN §4): 0 no risk, 1-3 low, 4-6 moderate, 7-8 high, 9+ critical."""
    if score <= 0:
        return 0
    if score <= 3:
        return 1
    if score <= 6:
        return 2
    if score <= 8:
        return 3
    return 4


_INDICATOR_NS = uuid.UUID("6f1c1d7e-5a0b-4c1e-9d64-0c42a1e2b3c4")


@dataclass(frozen=True)
class Indicator:
    key: str
    name: str
    weight: int
    category: str  # destination | file | user | activity

    @property
    def id(self) -> str:
        """Indicator ids are global (the same in every tenant), like Incydr's built-in indicators."""
        return str(uuid.uuid5(_INDICATOR_NS, self.name))


@dataclass(frozen=True)
class Vector:
    """How files leave: the destination indicator plus what the file events look like."""

    key: str
    indicator: Indicator
    share: float  # how often sessions use this vector
    action: str
    event_vector: str
    observer: str
    destination_category: str
    destinations: tuple[str, ...]
    file_categories: tuple[str, ...]  # categories the moved files are drawn from
    phrase: str  # for the English summaries


def _i(key: str, name: str, weight: int, category: str) -> Indicator:
    return Indicator(key, name, weight, category)


REMOVABLE_MEDIA = _i("removable-media", "Removable media", 3, "destination")
PERSONAL_CLOUD = _i("personal-cloud", "Personal cloud storage", 3, "destination")
PUBLIC_LINK = _i("public-link", "Public link share", 4, "destination")
PERSONAL_EMAIL = _i("personal-email", "Personal webmail", 3, "destination")
AIRDROP = _i("airdrop", "AirDrop", 3, "destination")
GIT_PUSH = _i("git-push", "Git push to untrusted repository", 3, "destination")
MESSAGING = _i("messaging", "Messaging app upload", 2, "destination")
GENAI = _i("genai", "Generative AI tool", 2, "destination")

SOURCE_CODE = _i("source-code", "Source code", 3, "file")
ARCHIVE = _i("archive", "Zip or compressed file", 1, "file")
SPREADSHEET = _i("spreadsheet", "Spreadsheet", 1, "file")
DOCUMENT = _i("document", "Document", 0, "file")
FILE_MISMATCH = _i("file-mismatch", "File type mismatch", 3, "file")

DEPARTING = _i("departing-employee", "Departing employee", 4, "user")
HIGH_IMPACT = _i("high-impact-employee", "High impact employee", 2, "user")
CONTRACTOR = _i("contractor", "Contractor", 1, "user")

REMOTE = _i("remote-activity", "Remote activity", 1, "activity")
OFF_HOURS = _i("off-hours", "Off hours", 1, "activity")
FIRST_USE = _i("first-use-destination", "First use of destination", 2, "activity")

INDICATORS: tuple[Indicator, ...] = (
    REMOVABLE_MEDIA, PERSONAL_CLOUD, PUBLIC_LINK, PERSONAL_EMAIL, AIRDROP, GIT_PUSH, MESSAGING, GENAI,
    SOURCE_CODE, ARCHIVE, SPREADSHEET, DOCUMENT, FILE_MISMATCH,
    DEPARTING, HIGH_IMPACT, CONTRACTOR, REMOTE, OFF_HOURS, FIRST_USE,
)
INDICATORS_BY_ID = {i.id: i for i in INDICATORS}

FILE_CATEGORY_INDICATOR = {
    "SourceCode": SOURCE_CODE, "Archive": ARCHIVE, "Spreadsheet": SPREADSHEET, "Document": DOCUMENT,
    "Presentation": DOCUMENT, "Pdf": DOCUMENT,
}
FILE_EXTENSIONS = {
    "SourceCode": ("py", "java", "go", "ts", "cpp"), "Archive": ("zip", "7z", "tar.gz"),
    "Spreadsheet": ("xlsx", "csv"), "Document": ("docx", "txt"), "Presentation": ("pptx",), "Pdf": ("pdf",),
}
FILE_STEMS = ("customer-list", "q3-forecast", "pricing", "roadmap", "payroll", "design-spec", "contract",
              "board-deck", "salaries", "pipeline", "api-keys", "backup", "patent-draft", "leads")

VECTORS: tuple[Vector, ...] = (
    Vector("removable_media", REMOVABLE_MEDIA, 0.26, "removable-media-created", "REMOVABLE_MEDIA", "Endpoint",
           "Removable Media", ("SanDisk Ultra", "Kingston DataTraveler 3.0", "Samsung T7"),
           ("Document", "Spreadsheet", "Archive", "SourceCode", "Pdf"), "copied {n} files to removable media"),
    Vector("personal_cloud", PERSONAL_CLOUD, 0.22, "file-uploaded", "CLOUD_UPLOAD", "Endpoint", "Cloud Storage",
           ("Dropbox", "Google Drive (personal)", "Box (personal)", "iCloud Drive"),
           ("Document", "Spreadsheet", "Presentation", "Archive", "SourceCode"),
           "uploaded {n} files to personal cloud storage"),
    Vector("public_link", PUBLIC_LINK, 0.12, "file-shared", "PUBLIC_LINK_SHARE", "GoogleDrive", "Public Link",
           ("Anyone with the link",), ("Document", "Spreadsheet", "Presentation", "Pdf"),
           "shared {n} files by public link"),
    Vector("personal_email", PERSONAL_EMAIL, 0.14, "file-uploaded", "EMAIL", "Endpoint", "Email",
           ("Gmail", "Outlook.com", "Yahoo Mail"), ("Document", "Spreadsheet", "Pdf", "Archive"),
           "attached {n} files to personal webmail"),
    Vector("airdrop", AIRDROP, 0.06, "file-moved", "AIRDROP", "Endpoint", "AirDrop", ("AirDrop",),
           ("Document", "Presentation", "Pdf"), "sent {n} files by AirDrop"),
    Vector("git_push", GIT_PUSH, 0.08, "git-push", "GIT_PUSH", "Endpoint", "Source Code Repository",
           ("github.com", "gitlab.com", "bitbucket.org"), ("SourceCode",),
           "pushed {n} files to an untrusted repository"),
    Vector("messaging", MESSAGING, 0.07, "file-uploaded", "MESSAGING", "Endpoint", "Messaging",
           ("WhatsApp Web", "Telegram", "Discord"), ("Document", "Pdf", "Presentation"),
           "uploaded {n} files to a messaging app"),
    Vector("genai", GENAI, 0.05, "file-uploaded", "GENAI_UPLOAD", "Endpoint", "AI Tools",
           ("ChatGPT", "Gemini", "Perplexity"), ("Document", "Spreadsheet", "SourceCode"),
           "uploaded {n} files to a generative AI tool"),
)


@dataclass(frozen=True)
class WatchlistDef:
    key: str
    name: str
    type: str


WATCHLISTS = (
    WatchlistDef("departing", "Departing employees", "DEPARTING_EMPLOYEE"),
    WatchlistDef("high-impact", "High impact employees", "HIGH_IMPACT_EMPLOYEE"),
    WatchlistDef("contractors", "Contractors", "CUSTOM"),
)


@dataclass(frozen=True)
class RuleDef:
    """An alert rule: which sessions it alerts on, and how it reads in ``GET /v2/alert-rules``."""

    key: str
    name: str
    description: str
    rule_type: str  # alert "type" (RuleType enum)
    severity: str  # deprecated static severity: LOW | MEDIUM | HIGH
    vectors: tuple[str, ...]  # Vector keys watched
    requires: Indicator | None  # indicator the session must carry (file category, watchlist, ...)
    min_severity: int  # session risk severity the rule needs (riskSeverity filter)
    system: bool
    enabled: bool
    lesson: str  # SecurityCoach / Instructor lesson title
    messaging: str | None  # Email | Slack | Teams | ThirdPartyIntegration
    watchlist: str | None = None

    def matches(self, vector: Vector, indicators: frozenset[str], severity: int) -> bool:
        return (self.enabled and vector.key in self.vectors and severity >= self.min_severity
                and (self.requires is None or self.requires.key in indicators))


# Education messaging methods through which Code42 Instructor itself sends the rule's lesson (the
# SDK's EducationSettings.messaging_method / MessagingMethod); ThirdPartyIntegration and None do not.
INSTRUCTOR_MESSAGING = ("Email", "Slack", "Teams")

_EXFIL = ("removable_media", "personal_cloud", "personal_email", "public_link")
RULES: tuple[RuleDef, ...] = (
    RuleDef("removable-media", "Removable media exfiltration",
            "Files copied to USB drives and other removable media.", "FED_ENDPOINT_EXFILTRATION", "HIGH",
            ("removable_media",), None, 2, True, True, "Handling data on removable media", "ThirdPartyIntegration"),
    RuleDef("personal-cloud", "Personal cloud storage upload",
            "Files uploaded to personal cloud storage accounts.", "FED_ENDPOINT_EXFILTRATION", "MEDIUM",
            ("personal_cloud",), None, 2, True, True, "Using sanctioned cloud storage", "ThirdPartyIntegration"),
    RuleDef("public-link", "Public link sharing",
            "Corporate cloud files shared with anyone who has the link.", "FED_CLOUD_SHARE_PERMISSIONS", "HIGH",
            ("public_link",), None, 1, True, True, "Sharing files safely", "Slack"),
    RuleDef("personal-email", "Email to personal account",
            "Files attached to personal webmail.", "FED_ENDPOINT_EXFILTRATION", "MEDIUM",
            ("personal_email",), None, 2, True, True, "Keeping work email at work", "Email"),
    RuleDef("source-code", "Source code exfiltration",
            "Source code leaving through any untrusted destination.", "FED_ENDPOINT_EXFILTRATION", "HIGH",
            ("removable_media", "personal_cloud", "git_push", "genai"), SOURCE_CODE, 1, False, True,
            "Protecting source code", "ThirdPartyIntegration"),
    RuleDef("departing", "Departing employee exfiltration",
            "Any exfiltration by employees on the departing employees watchlist.", "FED_COMPOSITE", "HIGH",
            (*_EXFIL, "airdrop", "messaging"), DEPARTING, 1, False, True, "Your obligations when leaving",
            "Email", watchlist="departing"),
    RuleDef("file-mismatch", "File type mismatch",
            "Files whose extension hides their real type.", "FED_FILE_TYPE_MISMATCH", "LOW",
            ("removable_media", "personal_cloud", "personal_email"), FILE_MISMATCH, 1, False, True,
            "Why renaming files does not hide them", None),
    RuleDef("genai-messaging", "Generative AI and messaging uploads (pilot)",
            "Pilot: uploads to AI tools and messaging apps.", "FED_ENDPOINT_EXFILTRATION", "LOW",
            ("genai", "messaging", "airdrop"), None, 1, False, False, "Using AI tools safely", "Teams"),
)
RULES_BY_KEY = {r.key: r for r in RULES}
