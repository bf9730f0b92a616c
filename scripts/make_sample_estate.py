"""Write the sample estate under inventory/estate/: deterministic, so that reruns change nothing.

It resembles the real estate in its figures (E/2009/21): 190 missions, 792 mailboxes on four
servers, 60 mission websites, and one year of donations: 1,067 CPUs, 933 monitors, 345 printers
and 50 other devices. Names are reserved for examples (RFC 2606): every domain ends in .example.

Usage: python scripts/make_sample_estate.py [ESTATE_DIR]
"""

from __future__ import annotations

import csv
import datetime as dt
import random
import sys
from pathlib import Path

# ISO 3166-1 alpha-2 codes and short names of the 193 member states; the sample serves 190.
COUNTRIES = """
AF Afghanistan;AL Albania;DZ Algeria;AD Andorra;AO Angola;AG Antigua and Barbuda;AR Argentina;
AM Armenia;AU Australia;AT Austria;AZ Azerbaijan;BS Bahamas;BH Bahrain;BD Bangladesh;
BB Barbados;BY Belarus;BE Belgium;BZ Belize;BJ Benin;BT Bhutan;BO Bolivia;
BA Bosnia and Herzegovina;BW Botswana;BR Brazil;BN Brunei Darussalam;BG Bulgaria;
BF Burkina Faso;BI Burundi;CV Cabo Verde;KH Cambodia;CM Cameroon;CA Canada;
CF Central African Republic;TD Chad;CL Chile;CN China;CO Colombia;KM Comoros;CG Congo;
CR Costa Rica;CI Cote d'Ivoire;HR Croatia;CU Cuba;CY Cyprus;CZ Czechia;
KP Democratic People's Republic of Korea;CD Democratic Republic of the Congo;DK Denmark;
DJ Djibouti;DM Dominica;DO Dominican Republic;EC Ecuador;EG Egypt;SV El Salvador;
GQ Equatorial Guinea;ER Eritrea;EE Estonia;SZ Eswatini;ET Ethiopia;FJ Fiji;FI Finland;
FR France;GA Gabon;GM Gambia;GE Georgia;DE Germany;GH Ghana;GR Greece;GD Grenada;
GT Guatemala;GN Guinea;GW Guinea-Bissau;GY Guyana;HT Haiti;HN Honduras;HU Hungary;
IS Iceland;IN India;ID Indonesia;IR Iran;IQ Iraq;IE Ireland;IL Israel;IT Italy;JM Jamaica;
JP Japan;JO Jordan;KZ Kazakhstan;KE Kenya;KI Kiribati;KW Kuwait;KG Kyrgyzstan;
LA Lao People's Democratic Republic;LV Latvia;LB Lebanon;LS Lesotho;LR Liberia;LY Libya;
LI Liechtenstein;LT Lithuania;LU Luxembourg;MG Madagascar;MW Malawi;MY Malaysia;
MV Maldives;ML Mali;MT Malta;MH Marshall Islands;MR Mauritania;MU Mauritius;MX Mexico;
FM Micronesia;MC Monaco;MN Mongolia;ME Montenegro;MA Morocco;MZ Mozambique;MM Myanmar;
NA Namibia;NR Nauru;NP Nepal;NL Netherlands;NZ New Zealand;NI Nicaragua;NE Niger;
NG Nigeria;MK North Macedonia;NO Norway;OM Oman;PK Pakistan;PW Palau;PA Panama;
PG Papua New Guinea;PY Paraguay;PE Peru;PH Philippines;PL Poland;PT Portugal;QA Qatar;
KR Republic of Korea;MD Republic of Moldova;RO Romania;RU Russian Federation;RW Rwanda;
KN Saint Kitts and Nevis;LC Saint Lucia;VC Saint Vincent and the Grenadines;WS Samoa;
SM San Marino;ST Sao Tome and Principe;SA Saudi Arabia;SN Senegal;RS Serbia;SC Seychelles;
SL Sierra Leone;SG Singapore;SK Slovakia;SI Slovenia;SB Solomon Islands;SO Somalia;
ZA South Africa;SS South Sudan;ES Spain;LK Sri Lanka;SD Sudan;SR Suriname;SE Sweden;
CH Switzerland;SY Syrian Arab Republic;TJ Tajikistan;TH Thailand;TL Timor-Leste;TG Togo;
TO Tonga;TT Trinidad and Tobago;TN Tunisia;TR Turkiye;TM Turkmenistan;TV Tuvalu;UG Uganda;
UA Ukraine;AE United Arab Emirates;GB United Kingdom;TZ United Republic of Tanzania;
US United States of America;UY Uruguay;UZ Uzbekistan;VU Vanuatu;VE Venezuela;VN Viet Nam;
YE Yemen;ZM Zambia;ZW Zimbabwe
"""

MAIL_SERVERS = ["mail1", "mail2", "mail3", "mail4"]
MAILBOXES = 792
SITES = 60
DONATIONS = {"cpu": 1067, "monitor": 933, "printer": 345, "other": 50}
YEAR = 2008
FIRST_NAMES = [
    "amina",
    "bruno",
    "chen",
    "dara",
    "elena",
    "farid",
    "grace",
    "hiro",
    "ines",
    "jonas",
    "kofi",
    "lena",
    "mateo",
    "nadia",
    "omar",
    "priya",
    "rosa",
    "sami",
    "tala",
    "umar",
    "vera",
    "wei",
    "yara",
    "zoltan",
]
LAST_NAMES = [
    "abebe",
    "bauer",
    "costa",
    "diallo",
    "eriksen",
    "fischer",
    "garcia",
    "haddad",
    "ivanova",
    "jensen",
    "kim",
    "lopez",
    "mensah",
    "novak",
    "okafor",
    "petrov",
    "quispe",
    "rahman",
    "silva",
    "tanaka",
    "usman",
    "volkov",
    "wright",
    "zhou",
]


def countries() -> list[tuple[str, str]]:
    entries = [e.strip() for e in COUNTRIES.replace("\n", "").split(";") if e.strip()]
    pairs = [(e[:2], e[3:]) for e in entries]
    assert len({code for code, _ in pairs}) == 193, len(pairs)
    # Three states are served from elsewhere in the sample: 190 missions remain.
    return [pair for pair in pairs if pair[0] not in ("NR", "TV", "PW")]


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def main(root: Path) -> None:
    rng = random.Random(2009)  # noqa: S311 - a fixed seed: the sample is the same on every run
    missions = countries()
    write_csv(
        root / "missions.csv",
        ["code", "name", "mail_domain"],
        [[code, name, f"{code.lower()}.missions.example"] for code, name in missions],
    )

    # 792 mailboxes: every mission has at least one, the larger missions more; 198 per server.
    counts = {code: 1 for code, _ in missions}
    for _ in range(MAILBOXES - len(missions)):
        counts[rng.choice(missions[: len(missions) // 2])[0]] += 1
    rows: list[list[object]] = []
    index = 0
    for code, _name in missions:
        for n in range(counts[code]):
            first = FIRST_NAMES[(index * 7) % len(FIRST_NAMES)]
            last = LAST_NAMES[(index * 11 + n) % len(LAST_NAMES)]
            local = f"{first}.{last}" if n else "info"
            display = f"{first.title()} {last.title()}" if n else f"Mission of {code}"
            address = f"{local}@{code.lower()}.missions.example"
            while any(r[0] == address for r in rows[-counts[code] :]):
                local += "2"
                address = f"{local}@{code.lower()}.missions.example"
            rows.append([address, code, MAIL_SERVERS[index % 4], display, 2048, "active"])
            index += 1
    for row in rng.sample(rows, 12):
        row[5] = "disabled"
    write_csv(
        root / "mailboxes.csv",
        ["address", "mission", "server", "display_name", "quota_mb", "state"],
        rows,
    )

    # Two buildings; access points serve the public areas and conference rooms.
    aps: list[dict[str, object]] = []
    rooms: list[list[object]] = []
    plan = {"ga": [(1, 6), (2, 4), (3, 4)], "cb": [(1, 4), (2, 4), (4, 2)]}
    for building, floors in plan.items():
        for floor, count in floors:
            floor_aps = []
            for n in range(1, count + 1):
                name = f"ap-{building}{floor}-{n:02d}"
                floor_aps.append(name)
                aps.append({"name": name, "building": building, "floor": floor})
            for n in range(1, count * 2 + 1):
                kind = "conference_room" if n % 2 else "public_area"
                room = f"{floor}{n:02d}{'C' if kind == 'conference_room' else 'P'}"
                served = " ".join(floor_aps[(n - 1) // 2 : (n - 1) // 2 + 1])
                capacity = rng.choice([24, 40, 80, 120, 200]) if kind == "conference_room" else 60
                rooms.append([building, floor, room, kind, capacity, rng.randint(0, 3), served])
            rooms.append([building, floor, f"{floor}90", "office", 12, rng.randint(0, 3), ""])
    write_csv(
        root / "rooms.csv",
        ["building", "floor", "room", "kind", "capacity", "phase", "served_by"],
        rooms,
    )
    lines = [
        "# Wi-Fi: the network the delegates see, and every access point.",
        "# An access point with a lab_address is an SNMP agent in the rehearsal fleet.",
        "",
        "[wifi]",
        'ssid = "delegates"',
        'country = "US"',
        "",
        "# Where each model's agent counts associated clients: a column with one row per radio.",
        "# The sample model answers CISCO-DOT11-ASSOCIATION-MIB::cDot11ActiveWirelessClients.",
        "[wifi.clients_oid]",
        '"generic-802.11ac" = "1.3.6.1.4.1.9.9.273.1.1.2.1.1"',
        "",
    ]
    for n, ap in enumerate(aps):
        lines += [
            "[[access_point]]",
            f'name = "{ap["name"]}"',
            f'building = "{ap["building"]}"',
            f"floor = {ap['floor']}",
            'model = "generic-802.11ac"',
            f'address = "203.0.113.{100 + n}"',
        ]
        if n < 2:
            lines.append(f'lab_address = "198.18.0.{60 + n}"')
        lines.append("")
    (root / "wifi.toml").write_text("\n".join(lines), encoding="utf-8")

    # 60 mission websites on the two CMS hosts.
    owners = rng.sample([code for code, _ in missions], SITES)
    write_csv(
        root / "sites.csv",
        ["site", "mission", "host", "editors"],
        [
            [
                f"www.{code.lower()}.missions.example",
                code,
                "cms1" if i % 2 == 0 else "cms2",
                rng.randint(1, 5),
            ]
            for i, code in enumerate(sorted(owners))
        ],
    )

    # One year of donations: 2,395 items.
    kinds = [kind for kind, count in DONATIONS.items() for _ in range(count)]
    rng.shuffle(kinds)
    start = dt.date(YEAR, 1, 1)
    donations = []
    for kind in kinds:
        day = start + dt.timedelta(days=rng.randrange(366))
        donations.append((day, kind))
    donations.sort()
    write_csv(
        root / "donations.csv",
        ["item", "kind", "serial", "asset_tag", "mission", "date"],
        [
            [
                f"D{YEAR}-{n:05d}",
                kind,
                f"{kind[:3].upper()}-{rng.randrange(16**8):08X}",
                f"UN-{400000 + n:06d}",
                rng.choice(missions)[0],
                day.isoformat(),
            ]
            for n, (day, kind) in enumerate(donations, 1)
        ],
    )


if __name__ == "__main__":
    main(
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(__file__).parent.parent / "inventory" / "estate"
    )
