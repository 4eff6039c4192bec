"""The facts the synthetic generator draws from: markets, card networks, Stripe's decline and dispute codes.

Weights are shaped like a mid-size international e-commerce merchant, not measured
from anyone's data. Codes and messages are Stripe's own (docs: "Declines",
"Testing", "Dispute reasons"), so analytics built on synthetic data keep working
on real data.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Market:
    country: str  # ISO 3166-1 alpha-2, as Stripe writes it
    currency: str  # what customers there are charged in (lower-case ISO 4217)
    weight: float  # share of customers
    utc_offset_hours: float
    names: str  # key of NAME_POOLS
    cities: tuple[tuple[str, str | None], ...]  # (city, state)
    postal_code: str | None  # template: '#' a digit, 'A' a letter
    units_per_usd: float  # rough price level, only so a basket costs ¥6,000 and not ¥40


MARKETS: tuple[Market, ...] = (
    Market(
        "US",
        "usd",
        30,
        -5,
        "western",
        (("New York", "NY"), ("Austin", "TX"), ("Seattle", "WA"), ("Chicago", "IL"), ("Los Angeles", "CA")),
        "#####",
        1.0,
    ),
    Market(
        "GB",
        "gbp",
        12,
        0,
        "western",
        (("London", None), ("Manchester", None), ("Edinburgh", None), ("Bristol", None)),
        "AA# #AA",
        0.79,
    ),
    Market("DE", "eur", 6, 1, "western", (("Berlin", None), ("München", None), ("Hamburg", None)), "#####", 0.92),
    Market("FR", "eur", 5, 1, "western", (("Paris", None), ("Lyon", None), ("Marseille", None)), "#####", 0.92),
    Market("ES", "eur", 3, 1, "latin", (("Madrid", None), ("Barcelona", None), ("Valencia", None)), "#####", 0.92),
    Market("IT", "eur", 3, 1, "western", (("Milano", None), ("Roma", None), ("Torino", None)), "#####", 0.92),
    Market(
        "NL", "eur", 2, 1, "western", (("Amsterdam", None), ("Rotterdam", None), ("Utrecht", None)), "#### AA", 0.92
    ),
    Market("IE", "eur", 1, 0, "western", (("Dublin", None), ("Cork", None)), "A## AAAA", 0.92),
    Market(
        "CA", "cad", 4, -5, "western", (("Toronto", "ON"), ("Vancouver", "BC"), ("Montréal", "QC")), "A#A #A#", 1.37
    ),
    Market("AU", "aud", 3, 10, "western", (("Sydney", "NSW"), ("Melbourne", "VIC"), ("Brisbane", "QLD")), "####", 1.52),
    Market("NZ", "nzd", 0.8, 12, "western", (("Auckland", None), ("Wellington", None)), "####", 1.65),
    Market("JP", "jpy", 5, 9, "japanese", (("Tokyo", None), ("Osaka", None), ("Yokohama", None)), "###-####", 150.0),
    Market("KR", "krw", 3, 9, "korean", (("Seoul", None), ("Busan", None), ("Incheon", None)), "#####", 1350.0),
    Market("SG", "sgd", 1.5, 8, "western", (("Singapore", None),), "######", 1.35),
    Market("HK", "hkd", 1.5, 8, "western", (("Hong Kong", None), ("Kowloon", None)), None, 7.8),
    Market("IN", "inr", 2, 5.5, "indian", (("Mumbai", "MH"), ("Bengaluru", "KA"), ("Delhi", "DL")), "######", 83.0),
    # The ECB publishes no AED or KWD rate: offline (the bundled ECB file) these two markets are the
    # deliberate few charges without a GBP amount, flagged fx_rate_missing. Every other currency
    # charged here has an ECB rate. KWD also keeps a three-decimal currency in the mix.
    Market("AE", "aed", 0.5, 4, "arabic", (("Dubai", None), ("Abu Dhabi", None)), None, 3.67),
    Market("KW", "kwd", 0.5, 3, "arabic", (("Kuwait City", None), ("Hawalli", None)), "#####", 0.31),
    Market("CH", "chf", 1.5, 1, "western", (("Zürich", None), ("Genève", None)), "####", 0.88),
    Market("SE", "sek", 1.5, 1, "western", (("Stockholm", None), ("Göteborg", None)), "### ##", 10.6),
    Market("NO", "nok", 1, 1, "western", (("Oslo", None), ("Bergen", None)), "####", 10.7),
    Market("DK", "dkk", 1, 1, "western", (("København", None), ("Aarhus", None)), "####", 6.9),
    Market("PL", "pln", 1.5, 1, "western", (("Warszawa", None), ("Kraków", None)), "##-###", 4.0),
    Market("BR", "brl", 2, -3, "latin", (("São Paulo", "SP"), ("Rio de Janeiro", "RJ")), "#####-###", 5.4),
    Market("MX", "mxn", 2, -6, "latin", (("Ciudad de México", "CMX"), ("Guadalajara", "JAL")), "#####", 18.0),
    Market("ZA", "zar", 0.8, 2, "western", (("Johannesburg", None), ("Cape Town", None)), "####", 18.5),
)

# Some customers abroad are shown the merchant's own price list, in US dollars.
SHARE_CHARGED_IN_USD_ABROAD = 0.08

NAME_POOLS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "western": (
        (
            "Olivia",
            "Liam",
            "Emma",
            "Noah",
            "Amelia",
            "Oliver",
            "Sophie",
            "Lucas",
            "Mia",
            "Leon",
            "Hannah",
            "Jack",
            "Chloé",
            "Elias",
            "Isla",
            "Mateo",
            "Freya",
            "Finn",
            "Zoe",
            "Jakub",
        ),
        (
            "Smith",
            "Johnson",
            "Brown",
            "Müller",
            "Martin",
            "Bernard",
            "Rossi",
            "de Vries",
            "Murphy",
            "Taylor",
            "Wilson",
            "Schmidt",
            "Dubois",
            "Nowak",
            "Andersson",
            "Hansen",
            "Novak",
            "Walker",
        ),
    ),
    "latin": (
        ("Sofía", "Mateo", "Valentina", "Santiago", "Camila", "Diego", "Lucía", "João", "Ana", "Pedro"),
        ("García", "Rodríguez", "Silva", "Santos", "Martínez", "López", "Hernández", "Oliveira", "Pérez"),
    ),
    "japanese": (
        ("Haruto", "Yui", "Sota", "Hina", "Ren", "Aoi", "Yuto", "Sakura", "Riku", "Mei"),
        ("Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Yamamoto", "Nakamura"),
    ),
    "korean": (
        ("Min-jun", "Seo-yeon", "Ji-ho", "Ha-eun", "Do-yoon", "Ji-woo", "Eun-woo", "Su-ah"),
        ("Kim", "Lee", "Park", "Choi", "Jung", "Kang", "Cho", "Yoon"),
    ),
    "arabic": (
        ("Mohammed", "Fatima", "Ahmed", "Mariam", "Omar", "Noura", "Yousef", "Aisha", "Khalid", "Layla"),
        ("Al-Sabah", "Al-Khalifa", "Haddad", "Al-Mansouri", "Nasser", "Khoury", "Al-Rashid", "Saleh"),
    ),
    "indian": (
        ("Aarav", "Ananya", "Vihaan", "Diya", "Arjun", "Isha", "Rohan", "Priya"),
        ("Sharma", "Patel", "Iyer", "Reddy", "Gupta", "Nair", "Singh", "Mehta"),
    ),
}

STREETS = (
    "High Street",
    "Main Street",
    "Station Road",
    "Park Avenue",
    "Church Lane",
    "Market Square",
    "Hauptstraße",
    "Rue de la Paix",
    "Calle Mayor",
    "Via Roma",
    "Chuo-dori",
    "Sheikh Zayed Road",
)

EMAIL_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me", "gmx.de", "naver.com")

# Card brands by where the card was issued; `default` for everywhere else.
CARD_BRANDS: dict[str, tuple[tuple[str, float], ...]] = {
    "default": (
        ("visa", 58),
        ("mastercard", 33),
        ("amex", 6),
        ("discover", 1),
        ("jcb", 1),
        ("diners", 0.5),
        ("unionpay", 0.5),
    ),
    "US": (("visa", 52), ("mastercard", 25), ("amex", 16), ("discover", 7)),
    "JP": (("visa", 45), ("mastercard", 25), ("jcb", 25), ("amex", 5)),
    "HK": (("visa", 50), ("mastercard", 35), ("unionpay", 10), ("amex", 5)),
    "SG": (("visa", 55), ("mastercard", 35), ("unionpay", 5), ("amex", 5)),
}
CARD_FUNDING = (("credit", 50), ("debit", 45), ("prepaid", 4), ("unknown", 1))
# French cards are co-badged: Stripe reports the network that processed them.
SHARE_ROUTED_VIA_CARTES_BANCAIRES = 0.4
SHARE_CARD_ISSUED_ABROAD = 0.08

# Wallet type on payment_method_details.card.wallet; None = a card typed in.
WALLETS = ((None, 63), ("apple_pay", 22), ("google_pay", 10), ("link", 5))

# Strong Customer Authentication: where 3-D Secure runs on most card payments.
SCA_COUNTRIES = frozenset({"GB", "DE", "FR", "ES", "IT", "NL", "IE", "PL", "SE", "DK", "NO", "CH", "IN"})
SHARE_3DS_UNDER_SCA = 0.6


@dataclass(frozen=True)
class Decline:
    decline_code: str  # outcome.reason
    failure_code: str  # charge.failure_code (the API error code)
    failure_message: str  # what Stripe tells the customer
    network_decline_code: str | None
    advice_code: str | None
    weight: float
    blocked_by_radar: bool = False


DECLINED = "Your card was declined."
DECLINES: tuple[Decline, ...] = (
    Decline("generic_decline", "card_declined", DECLINED, "05", None, 30),
    Decline("insufficient_funds", "card_declined", "Your card has insufficient funds.", "51", "try_again_later", 25),
    Decline("do_not_honor", "card_declined", DECLINED, "05", None, 8),
    Decline("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect.", "N7", "confirm_card_data", 7),
    Decline("expired_card", "expired_card", "Your card has expired.", "54", "do_not_try_again", 6),
    Decline(
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
        "96",
        "try_again_later",
        3,
    ),
    Decline(
        "transaction_not_allowed",
        "card_declined",
        "Your card does not support this type of purchase.",
        "57",
        "do_not_try_again",
        3,
    ),
    Decline("fraudulent", "card_declined", DECLINED, "59", "do_not_try_again", 3),
    Decline(
        "card_velocity_exceeded",
        "card_declined",
        "Your card was declined for making repeated attempts too frequently or exceeding its amount limit.",
        "61",
        "try_again_later",
        2,
    ),
    Decline("incorrect_number", "incorrect_number", "Your card number is incorrect.", "14", "do_not_try_again", 2),
    Decline("lost_card", "card_declined", DECLINED, "41", "do_not_try_again", 2),
    Decline("stolen_card", "card_declined", DECLINED, "43", "do_not_try_again", 1),
    Decline("highest_risk_level", "card_declined", DECLINED, None, None, 8, blocked_by_radar=True),
)
BASE_FAILURE_RATE = 0.05
EXTRA_FAILURE_RATE_CROSS_BORDER = 0.05
EXTRA_FAILURE_RATE_PREPAID = 0.06
SHARE_MANUAL_REVIEW = 0.01

# Dispute reason → the card network's reason code (None for networks we have no table for).
DISPUTE_REASONS: tuple[tuple[str, float, dict[str, str]], ...] = (
    ("fraudulent", 45, {"visa": "10.4", "mastercard": "4837", "amex": "F29"}),
    ("product_not_received", 20, {"visa": "13.1", "mastercard": "4855", "amex": "C08"}),
    ("unrecognized", 8, {"visa": "10.4", "mastercard": "4863", "amex": "F29"}),
    ("product_unacceptable", 8, {"visa": "13.3", "mastercard": "4853", "amex": "C31"}),
    ("subscription_canceled", 7, {"visa": "13.2", "mastercard": "4841", "amex": "C28"}),
    ("duplicate", 5, {"visa": "12.6.1", "mastercard": "4834", "amex": "P08"}),
    ("credit_not_processed", 5, {"visa": "13.6", "mastercard": "4860", "amex": "C02"}),
    ("general", 2, {"visa": "13.7", "mastercard": "4853", "amex": "C31"}),
)
SHARE_DISPUTED = 0.007
SHARE_DISPUTES_AS_INQUIRY = 0.2
SHARE_CHARGEBACKS_WON = 0.35

SHARE_REFUNDED = 0.06
SHARE_REFUNDS_PARTIAL = 0.3
REFUND_REASONS = ((None, 25), ("requested_by_customer", 65), ("duplicate", 6), ("fraudulent", 4))
# Refunded before the payment settled, the card network reverses the authorisation instead.
REVERSAL_WINDOW_MS = 6 * 3600 * 1000

# Relative shopping activity by local hour 00..23: quiet nights, a lunch bump, an evening peak.
HOURLY_ACTIVITY = (
    0.30,
    0.20,
    0.14,
    0.10,
    0.09,
    0.11,
    0.20,
    0.38,
    0.58,
    0.72,
    0.82,
    0.90,
    0.98,
    0.95,
    0.88,
    0.86,
    0.88,
    0.92,
    0.98,
    1.00,
    0.98,
    0.88,
    0.68,
    0.46,
)

PRODUCTS = (
    "Annual plan",
    "Monthly plan",
    "Gift card",
    "Wireless earbuds",
    "Running shoes",
    "Coffee beans 1kg",
    "Concert ticket",
    "Yoga class pack",
    "Phone case",
    "Backpack",
    "E-book bundle",
    "Desk lamp",
)
STATEMENT_DESCRIPTOR = "TXSTREAM SHOP"
