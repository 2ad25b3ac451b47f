"""Name pools for the fixture generator, and the kinds of noise real documents put on names.

Names stay within Latin-1 so the core PDF fonts can draw them; the diacritics they carry are the
ones OCR and card terminals most often lose.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass


@dataclass(frozen=True)
class VendorSeed:
    core: str
    legal_form: str
    country: str  # ISO 3166 alpha-2, decides currency, VAT rate and IBAN shape


# Vendors present in the QuickBooks ledger.
LEDGER_VENDORS: tuple[VendorSeed, ...] = (
    VendorSeed("Atelier Lumière", "SARL", "FR"),
    VendorSeed("Imprimerie Rapide", "SARL", "FR"),
    VendorSeed("Mercier Conseil", "SAS", "FR"),
    VendorSeed("Rhône Transports", "SAS", "FR"),
    VendorSeed("Techno Câblage", "SARL", "FR"),
    VendorSeed("Jardins de Provence", "SAS", "FR"),
    VendorSeed("Électricité Martin & Fils", "SARL", "FR"),
    VendorSeed("Fournitures Bureau Pro", "SAS", "FR"),
    VendorSeed("Cabinet Lefèvre Avocats", "SELARL", "FR"),
    VendorSeed("Nettoyage Éclat", "SAS", "FR"),
    VendorSeed("Garage Bérenger", "SARL", "FR"),
    VendorSeed("Informatique Durand", "SAS", "FR"),
    VendorSeed("Traiteur Saint-Honoré", "SAS", "FR"),
    VendorSeed("Agence Pixel Bleu", "SAS", "FR"),
    VendorSeed("Papeterie Moderne", "SARL", "FR"),
    VendorSeed("Groupe Valois Immobilier", "SA", "FR"),
    VendorSeed("Sécurité Alpha Protection", "SAS", "FR"),
    VendorSeed("Datastream", "GmbH", "DE"),
    VendorSeed("Kraftwerk Logistik", "GmbH", "DE"),
    VendorSeed("Wünsch Maschinenbau", "GmbH", "DE"),
    VendorSeed("Müller & Söhne Verpackung", "KG", "DE"),
    VendorSeed("Nordlicht Software", "GmbH", "DE"),
    VendorSeed("Grünwald Energie", "AG", "DE"),
    VendorSeed("Van der Berg Transport", "BV", "NL"),
    VendorSeed("Hoteles Sol y Mar", "SL", "ES"),
    VendorSeed("Ferrari Forniture", "Srl", "IT"),
    VendorSeed("Brasserie De Smet", "SRL", "BE"),
    VendorSeed("Cloudnine Hosting", "Ltd", "GB"),
    VendorSeed("Quantum Analytics", "Ltd", "GB"),
    VendorSeed("Urban Coffee Roasters", "Ltd", "GB"),
    VendorSeed("Xpress Couriers", "Ltd", "GB"),
    VendorSeed("Thames Office Supplies", "Ltd", "GB"),
    VendorSeed("Kensington Legal Services", "LLP", "GB"),
    VendorSeed("Global Freight", "Inc", "US"),
    VendorSeed("Software Plus", "Inc", "US"),
    VendorSeed("Pinecrest Data Systems", "LLC", "US"),
    VendorSeed("BrightPath Marketing", "Inc", "US"),
    VendorSeed("Summit Cloud Services", "Inc", "US"),
    VendorSeed("Redwood Analytics", "Corp", "US"),
    VendorSeed("Blue Harbor Consulting", "LLC", "US"),
)

# Near-namesakes of some ledger vendors, also in the ledger: a matcher must not be sure between them.
LEDGER_VENDOR_SIBLINGS: tuple[tuple[str, VendorSeed], ...] = (
    ("Mercier Conseil", VendorSeed("Mercier Conseils Associés", "SARL", "FR")),
    ("Datastream", VendorSeed("DataStream Systems", "GmbH", "DE")),
    ("Global Freight", VendorSeed("Global Freight Logistics", "LLC", "US")),
    ("Quantum Analytics", VendorSeed("Quantum Analytica", "Ltd", "GB")),
    ("Imprimerie Rapide", VendorSeed("Imprimerie Rapide Sud", "SAS", "FR")),
)

# Suppliers that send invoices but are not in the ledger.
UNKNOWN_VENDORS: tuple[VendorSeed, ...] = (
    VendorSeed("Amazon Business EU", "SARL", "FR"),
    VendorSeed("Uber", "BV", "NL"),
    VendorSeed("SNCF Voyageurs", "SA", "FR"),
    VendorSeed("Lyreco France", "SAS", "FR"),
    VendorSeed("OVH", "SAS", "FR"),
    VendorSeed("Hetzner Online", "GmbH", "DE"),
    VendorSeed("Notion Labs", "Inc", "US"),
    VendorSeed("Le Petit Bistrot", "", "FR"),
    VendorSeed("Deliveroo", "Ltd", "GB"),
    VendorSeed("Station Total Énergies", "SAS", "FR"),
    VendorSeed("Pressing du Marché", "", "FR"),
    VendorSeed("Zoom Video Communications", "Inc", "US"),
)

GIVEN_NAMES: tuple[str, ...] = (
    "Camille", "Léa", "Hugo", "Chloé", "Lucas", "Manon", "Théo", "Inès", "Louis", "Zoé",
    "Nathan", "Élodie", "Julien", "Sophie", "Antoine", "Margaux", "François", "Hélène", "Mathieu", "Céline",
    "Robert", "William", "Elizabeth", "Katherine", "Thomas", "Alexander", "Jonathan", "Margaret", "Daniel",
    "Stefan", "Jürgen", "Anja", "Søren", "José", "María", "Giulia", "Matteo", "Noémie", "Benoît", "Gaëlle",
)  # fmt: skip

FAMILY_NAMES: tuple[str, ...] = (
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau",
    "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "Fontaine", "Rousseau", "Chevalier", "Bérard",
    "Faure", "Gauthier", "Müller", "Schmidt", "Schröder", "Smith", "Johnson", "O'Brien", "Williams",
    "Taylor", "Brown", "Rossi", "Fernández", "Núñez", "Van Dijk", "Lambert", "Bonnet", "Girard", "Mercier",
)  # fmt: skip

CUSTOMER_COMPANIES: tuple[tuple[str, str], ...] = (
    ("Boulangerie Dupont", "SARL"),
    ("Café des Arts", "SARL"),
    ("Studio Graphique Ombre", "SAS"),
    ("Clinique Vétérinaire du Parc", "SELARL"),
    ("Librairie Le Chat Lettré", "SARL"),
    ("Hôtel Beau Séjour", "SAS"),
    ("Cave à Vins Bordelaise", "SARL"),
    ("Fleurs & Jardins Élise", "EURL"),
    ("Yoga Studio Lotus", "SAS"),
    ("Pharmacie Centrale", "SELARL"),
    ("Menuiserie Roche", "SARL"),
    ("Atelier Céramique Terre", "SAS"),
    ("Bistro Méditerranée", "SARL"),
    ("Optique Vision Plus", "SAS"),
    ("Auto-École Liberté", "SARL"),
    ("Salon Coiffure Éclat", "EURL"),
    ("Brightwater Events", "Ltd"),
    ("Harbour View Dental", "Ltd"),
    ("Greenleaf Catering", "Ltd"),
    ("Oakridge Partners", "LLC"),
    ("Silverline Productions", "Inc"),
    ("Maple Street Bakery", "LLC"),
    ("Hofmann Architekten", "GmbH"),
    ("Köhler Fotostudio", "GmbH"),
    ("Sportverein Blau-Weiß", "eV"),
)

NICKNAMES: dict[str, str] = {
    "Robert": "Bob",
    "William": "Bill",
    "Elizabeth": "Liz",
    "Katherine": "Kate",
    "Thomas": "Tom",
    "Alexander": "Alex",
    "Jonathan": "Jon",
    "Margaret": "Maggie",
    "Daniel": "Dan",
    "Mathieu": "Matt",
    "François": "Franck",
}

LEGAL_FORM_VARIANTS: dict[str, tuple[str, ...]] = {
    "SAS": ("S.A.S.", "SAS", "S.A.S", "sas"),
    "SARL": ("S.A.R.L.", "SARL", "Sarl"),
    "SA": ("S.A.", "SA"),
    "SELARL": ("Selarl", "SELARL"),
    "GmbH": ("GMBH", "Gmbh", "G.m.b.H."),
    "AG": ("AG",),
    "KG": ("KG", "GmbH & Co. KG"),
    "BV": ("B.V.", "BV"),
    "SL": ("S.L.", "SL"),
    "Srl": ("S.r.l.", "SRL"),
    "SRL": ("S.R.L.", "SPRL"),
    "Ltd": ("Limited", "LTD", "Ltd."),
    "LLP": ("L.L.P.", "LLP"),
    "Inc": ("Inc.", "Incorporated", "INC"),
    "LLC": ("L.L.C.", "LLC"),
    "Corp": ("Corporation", "Corp."),
    "EURL": ("E.U.R.L.", "EURL"),
    "eV": ("e.V.",),
}

# Abbreviations that appear on letterheads and card statements.
ABBREVIATIONS: dict[str, str] = {
    "Consulting": "Cnslt",
    "Conseil": "Cons.",
    "Services": "Svcs",
    "Transports": "Transp.",
    "Transport": "Trnsp",
    "Logistik": "Log.",
    "Informatique": "Info.",
    "International": "Intl",
    "Immobilier": "Immo",
    "Maschinenbau": "Masch.",
    "Verpackung": "Verp.",
    "Analytics": "Anlytcs",
    "Marketing": "Mktg",
    "Software": "Sftw",
    "Systems": "Sys",
    "Fournitures": "Fourn.",
    "Protection": "Prot.",
    "Supplies": "Supp.",
    "Couriers": "Cour.",
    "Hosting": "Hstg",
    "Roasters": "Rstrs",
    "Électricité": "Elec.",
    "Papeterie": "Papet.",
    "Imprimerie": "Impr.",
    "Nettoyage": "Nett.",
    "Forniture": "Forn.",
    "Energie": "Engy",
}

# Characters OCR confuses, in the direction it gets them wrong.
OCR_CONFUSIONS: dict[str, tuple[str, ...]] = {
    "o": ("0",),
    "O": ("0", "Q"),
    "l": ("1", "I"),
    "i": ("l", "1"),
    "I": ("l", "1"),
    "e": ("c",),
    "a": ("o",),
    "m": ("rn",),
    "n": ("r",),
    "S": ("5",),
    "s": ("5",),
    "B": ("8",),
    "u": ("v",),
    "h": ("b",),
    "t": ("f",),
    "c": ("e",),
}


def strip_diacritics(text: str) -> str:
    return "".join(char for char in unicodedata.normalize("NFKD", text) if not unicodedata.combining(char))


def ocr_noise(text: str, rng: random.Random, errors: int) -> str:
    """``errors`` character confusions at distinct positions, the way a scan is misread."""
    positions = [index for index, char in enumerate(text) if char in OCR_CONFUSIONS]
    rng.shuffle(positions)
    chars = list(text)
    for index in sorted(positions[:errors]):
        chars[index] = rng.choice(OCR_CONFUSIONS[chars[index]])
    return "".join(chars)


def abbreviate(text: str) -> str:
    return " ".join(ABBREVIATIONS.get(word, word) for word in text.split(" "))


def truncate(text: str, length: int) -> str:
    """Cut at ``length`` characters, as fixed-width statement fields do."""
    return text[:length].rstrip()
