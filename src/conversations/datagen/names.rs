//! Names the generator draws from. The first companies and tags are those of the
//! real sample export (its companies, the employers its titles mention, its tags),
//! so example queries such as `company=microsoft&tags=competition,orientation` work
//! on generated data too. These are names only, not data rows.

/// Company names, most prominent first (the Zipf rank follows this order).
pub(crate) const COMPANY_NAMES: &[&str] = &[
    "Amazon.com, Inc.",
    "Microsoft Corporation",
    "Tesla, Inc.",
    "Alphabet Inc.",
    "Apple Inc.",
    "Meta Platforms, Inc.",
    "NVIDIA Corporation",
    "Wayfair Inc.",
    "Deloitte",
    "Salesforce, Inc.",
    "Rivian Automotive, Inc.",
    "Oracle Corporation",
    "Shopify Inc.",
    "Adobe Inc.",
    "Workato",
    "Shield AI",
    "Netflix, Inc.",
    "Uber Technologies, Inc.",
    "Snowflake Inc.",
    "TekLinks",
    "Intel Corporation",
    "Cisco Systems, Inc.",
    "Eco2Solar Ltd",
    "ServiceNow, Inc.",
    "Datadog, Inc.",
    "Walmart Inc.",
    "Target Corporation",
    "General Motors Company",
    "Ford Motor Company",
    "Zoom Video Communications, Inc.",
];

/// First halves of synthetic company names for the long tail.
pub(crate) const NAME_STEMS: &[&str] = &[
    "North", "Blue", "Bright", "Silver", "Iron", "Clear", "Summit", "Harbor", "Pioneer", "Quantum",
    "Cedar", "Atlas", "Nova", "Vertex", "Granite", "Solar", "Swift", "Crest",
];

/// Second halves of synthetic company names.
pub(crate) const NAME_ENDINGS: &[&str] = &[
    "wind", "field", "path", "stone", "bridge", "works", "point", "line", "gate", "logic",
];

/// Legal forms appended to synthetic company names.
pub(crate) const LEGAL_FORMS: &[&str] =
    &["Inc.", "Corporation", "Ltd", "Group", "Holdings", "Labs"];

/// Tags, the sample's five first.
pub(crate) const TAG_NAMES: &[&str] = &[
    "Orientation",
    "Future",
    "Competition",
    "Industry",
    "Growth",
    "Pricing",
    "Margins",
    "Supply Chain",
    "Hiring",
    "Regulation",
    "Customers",
    "Product",
    "Partnerships",
    "Technology",
    "Sales",
    "Marketing",
    "Logistics",
    "Risk",
    "Strategy",
    "Operations",
];

/// Expert roles used in conversation transcript titles.
pub(crate) const ROLES: &[&str] = &[
    "Former Senior Manager",
    "Vice President of Business Development",
    "Director of Engineering",
    "Current President",
    "Lead Purchasing Manager",
    "Former Head of Sales",
    "Technical Director",
    "Chief Operating Officer",
    "Former Product Lead",
    "Regional Director",
];

/// Topics questions ask about.
pub(crate) const TOPICS: &[&str] = &[
    "its cloud business",
    "warehouse automation",
    "pricing power",
    "vendor relationships",
    "the next product cycle",
    "enterprise adoption",
    "unit economics",
    "hiring plans",
];
