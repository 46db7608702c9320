"""Starter rules shipped with the portal, inactive until a merchant activates them."""

from __future__ import annotations

from sqlmodel import Session, select

from portal.models import NotificationRule, NotificationTemplate, utcnow
from portal.returns import service

# (subject, text body, sms) per language; the HTML body is made from the text body.
RETURN_RECEIVED = {
    "sv": ("Vi har tagit emot din retur {{ rma }}",
           "Hej {{ first_name }}!\n\nNu har vi tagit emot din retur {{ rma }} (order {{ order_number }}). "
           "Vi kontrollerar varorna och återbetalar {{ refund_amount }} senast {{ refund_expected_date }}.\n\n"
           "Följ returen här: {{ status_link }}\n\nVänliga hälsningar\n{{ merchant_name }}",
           "Hej {{ first_name }}! Vi har tagit emot din retur {{ rma }}. Återbetalning senast {{ refund_expected_date }}. "
           "{{ status_link }} /{{ merchant_name }}"),
    "nb": ("Vi har mottatt returen din {{ rma }}",
           "Hei {{ first_name }}!\n\nNå har vi mottatt returen din {{ rma }} (ordre {{ order_number }}). "
           "Vi sjekker varene og refunderer {{ refund_amount }} innen {{ refund_expected_date }}.\n\n"
           "Følg returen her: {{ status_link }}\n\nVennlig hilsen\n{{ merchant_name }}",
           "Hei {{ first_name }}! Vi har mottatt returen din {{ rma }}. Refusjon innen {{ refund_expected_date }}. "
           "{{ status_link }} /{{ merchant_name }}"),
    "da": ("Vi har modtaget din returnering {{ rma }}",
           "Hej {{ first_name }}\n\nVi har nu modtaget din returnering {{ rma }} (ordre {{ order_number }}). "
           "Vi tjekker varerne og refunderer {{ refund_amount }} senest {{ refund_expected_date }}.\n\n"
           "Følg din returnering her: {{ status_link }}\n\nMed venlig hilsen\n{{ merchant_name }}",
           "Hej {{ first_name }}! Vi har modtaget din returnering {{ rma }}. Refusion senest {{ refund_expected_date }}. "
           "{{ status_link }} /{{ merchant_name }}"),
    "fi": ("Palautuksesi {{ rma }} on vastaanotettu",
           "Hei {{ first_name }}!\n\nOlemme vastaanottaneet palautuksesi {{ rma }} (tilaus {{ order_number }}). "
           "Tarkistamme tuotteet ja palautamme {{ refund_amount }} viimeistään {{ refund_expected_date }}.\n\n"
           "Seuraa palautustasi täällä: {{ status_link }}\n\nYstävällisin terveisin\n{{ merchant_name }}",
           "Hei {{ first_name }}! Palautuksesi {{ rma }} on vastaanotettu. Hyvitys viimeistään {{ refund_expected_date }}. "
           "{{ status_link }} /{{ merchant_name }}"),
    "en": ("We have received your return {{ rma }}",
           "Hi {{ first_name }},\n\nWe have received your return {{ rma }} (order {{ order_number }}). "
           "We are checking the items and will refund {{ refund_amount }} by {{ refund_expected_date }}.\n\n"
           "Follow your return here: {{ status_link }}\n\nKind regards,\n{{ merchant_name }}",
           "Hi {{ first_name }}, we have received your return {{ rma }}. Refund by {{ refund_expected_date }}. "
           "{{ status_link }} /{{ merchant_name }}"),
}

REFUND_ISSUED = {
    "sv": ("Din återbetalning för retur {{ rma }} är på väg",
           "Hej {{ first_name }}!\n\nVi har nu betalat tillbaka {{ refund_amount }} för din retur {{ rma }} "
           "(order {{ order_number }}). Beroende på din bank kan det ta några bankdagar innan pengarna syns på kontot.\n\n"
           "Detaljer: {{ status_link }}\n\nTack för att du handlar hos oss!\n{{ merchant_name }}",
           "Hej {{ first_name }}! Vi har betalat tillbaka {{ refund_amount }} för retur {{ rma }}. /{{ merchant_name }}"),
    "nb": ("Refusjonen for retur {{ rma }} er på vei",
           "Hei {{ first_name }}!\n\nVi har nå refundert {{ refund_amount }} for returen din {{ rma }} "
           "(ordre {{ order_number }}). Avhengig av banken din kan det ta noen virkedager før pengene vises på kontoen.\n\n"
           "Detaljer: {{ status_link }}\n\nTakk for at du handler hos oss!\n{{ merchant_name }}",
           "Hei {{ first_name }}! Vi har refundert {{ refund_amount }} for retur {{ rma }}. /{{ merchant_name }}"),
    "da": ("Din refusion for returnering {{ rma }} er på vej",
           "Hej {{ first_name }}\n\nVi har nu refunderet {{ refund_amount }} for din returnering {{ rma }} "
           "(ordre {{ order_number }}). Afhængigt af din bank kan der gå et par bankdage, før beløbet står på kontoen.\n\n"
           "Detaljer: {{ status_link }}\n\nTak fordi du handler hos os!\n{{ merchant_name }}",
           "Hej {{ first_name }}! Vi har refunderet {{ refund_amount }} for returnering {{ rma }}. /{{ merchant_name }}"),
    "fi": ("Palautuksen {{ rma }} hyvitys on maksettu",
           "Hei {{ first_name }}!\n\nOlemme maksaneet {{ refund_amount }} hyvityksenä palautuksestasi {{ rma }} "
           "(tilaus {{ order_number }}). Pankista riippuen summa näkyy tililläsi muutaman pankkipäivän kuluessa.\n\n"
           "Lisätiedot: {{ status_link }}\n\nKiitos, että asioit kanssamme!\n{{ merchant_name }}",
           "Hei {{ first_name }}! Hyvitys {{ refund_amount }} palautuksesta {{ rma }} on maksettu. /{{ merchant_name }}"),
    "en": ("Your refund for return {{ rma }} is on its way",
           "Hi {{ first_name }},\n\nWe have refunded {{ refund_amount }} for your return {{ rma }} "
           "(order {{ order_number }}). Depending on your bank it may take a few business days to show on your account.\n\n"
           "Details: {{ status_link }}\n\nThank you for shopping with us!\n{{ merchant_name }}",
           "Hi {{ first_name }}, we have refunded {{ refund_amount }} for return {{ rma }}. /{{ merchant_name }}"),
}

LABEL_UNUSED = {
    "sv": ("Glöm inte att lämna in din retur {{ rma }}",
           "Hej {{ first_name }}!\n\nDu registrerade returen {{ rma }} för {{ days }} dagar sedan, men vi har inte sett "
           "paketet hos {{ carrier_name }} ännu. Lämna in det senast {{ drop_off_deadline }}, annars upphör etiketten att gälla.\n\n"
           "Etikett och QR-kod: {{ status_link }}\n\nVänliga hälsningar\n{{ merchant_name }}",
           "Hej {{ first_name }}! Glöm inte att lämna in retur {{ rma }} senast {{ drop_off_deadline }}. "
           "{{ status_link }} /{{ merchant_name }}"),
    "nb": ("Husk å levere returen din {{ rma }}",
           "Hei {{ first_name }}!\n\nDu registrerte returen {{ rma }} for {{ days }} dager siden, men vi har ikke sett "
           "pakken hos {{ carrier_name }} ennå. Lever den innen {{ drop_off_deadline }}, ellers slutter etiketten å gjelde.\n\n"
           "Etikett og QR-kode: {{ status_link }}\n\nVennlig hilsen\n{{ merchant_name }}",
           "Hei {{ first_name }}! Husk å levere retur {{ rma }} innen {{ drop_off_deadline }}. "
           "{{ status_link }} /{{ merchant_name }}"),
    "da": ("Husk at aflevere din returnering {{ rma }}",
           "Hej {{ first_name }}\n\nDu oprettede returneringen {{ rma }} for {{ days }} dage siden, men vi har endnu ikke "
           "set pakken hos {{ carrier_name }}. Aflever den senest {{ drop_off_deadline }}, ellers udløber labelen.\n\n"
           "Label og QR-kode: {{ status_link }}\n\nMed venlig hilsen\n{{ merchant_name }}",
           "Hej {{ first_name }}! Husk at aflevere returnering {{ rma }} senest {{ drop_off_deadline }}. "
           "{{ status_link }} /{{ merchant_name }}"),
    "fi": ("Muista jättää palautuksesi {{ rma }}",
           "Hei {{ first_name }}!\n\nRekisteröit palautuksen {{ rma }} {{ days }} päivää sitten, mutta pakettia ei ole vielä "
           "jätetty {{ carrier_name }}ille. Jätä se viimeistään {{ drop_off_deadline }}, muuten osoitekortti vanhenee.\n\n"
           "Osoitekortti ja QR-koodi: {{ status_link }}\n\nYstävällisin terveisin\n{{ merchant_name }}",
           "Hei {{ first_name }}! Muista jättää palautus {{ rma }} viimeistään {{ drop_off_deadline }}. "
           "{{ status_link }} /{{ merchant_name }}"),
    "en": ("Don't forget to drop off your return {{ rma }}",
           "Hi {{ first_name }},\n\nYou registered return {{ rma }} {{ days }} days ago, but {{ carrier_name }} has not "
           "scanned the parcel yet. Please drop it off by {{ drop_off_deadline }}, or the label will expire.\n\n"
           "Label and QR code: {{ status_link }}\n\nKind regards,\n{{ merchant_name }}",
           "Hi {{ first_name }}, remember to drop off return {{ rma }} by {{ drop_off_deadline }}. "
           "{{ status_link }} /{{ merchant_name }}"),
}

REFUND_DUE_STAFF = {
    "sv": ("Återbetalning förfaller om {{ days }} dagar: {{ rma }}",
           "Returen {{ rma }} (order {{ order_number }}) ska återbetalas senast {{ refund_expected_date }}: {{ refund_amount }}.\n"
           "Status: {{ return_status }}.", ""),
    "nb": ("Refusjon forfaller om {{ days }} dager: {{ rma }}",
           "Returen {{ rma }} (ordre {{ order_number }}) skal refunderes innen {{ refund_expected_date }}: {{ refund_amount }}.\n"
           "Status: {{ return_status }}.", ""),
    "da": ("Refusion forfalder om {{ days }} dage: {{ rma }}",
           "Returneringen {{ rma }} (ordre {{ order_number }}) skal refunderes senest {{ refund_expected_date }}: {{ refund_amount }}.\n"
           "Status: {{ return_status }}.", ""),
    "fi": ("Hyvitys erääntyy {{ days }} päivän kuluttua: {{ rma }}",
           "Palautus {{ rma }} (tilaus {{ order_number }}) on hyvitettävä viimeistään {{ refund_expected_date }}: {{ refund_amount }}.\n"
           "Tila: {{ return_status }}.", ""),
    "en": ("Refund due in {{ days }} days: {{ rma }}",
           "Return {{ rma }} (order {{ order_number }}) must be refunded by {{ refund_expected_date }}: {{ refund_amount }}.\n"
           "Status: {{ return_status }}.", ""),
}

CONSOLIDATION_WAITING = {
    "sv": ("Retur {{ rma }} har väntat i {{ days }} dagar på konsolideringen i Norge",
           "Returen {{ rma }} (order {{ order_number }}) har väntat på den norska konsolideringsterminalen i minst "
           "{{ days }} dagar. Planera en hämtning för att undvika lagringsavgifter.", ""),
    "nb": ("Retur {{ rma }} har ventet i {{ days }} dager på konsolideringen i Norge",
           "Returen {{ rma }} (ordre {{ order_number }}) har ventet på konsolideringsterminalen i Norge i minst "
           "{{ days }} dager. Planlegg en henting for å unngå lagringsgebyr.", ""),
    "da": ("Returnering {{ rma }} har ventet i {{ days }} dage på konsolideringen i Norge",
           "Returneringen {{ rma }} (ordre {{ order_number }}) har ventet på konsolideringsterminalen i Norge i mindst "
           "{{ days }} dage. Planlæg en afhentning for at undgå lagergebyrer.", ""),
    "fi": ("Palautus {{ rma }} on odottanut Norjan konsolidointipisteessä {{ days }} päivää",
           "Palautus {{ rma }} (tilaus {{ order_number }}) on odottanut Norjan konsolidointiterminaalissa vähintään "
           "{{ days }} päivää. Suunnittele nouto, jotta vältät varastointimaksut.", ""),
    "en": ("Return {{ rma }} has waited {{ days }} days at the Norwegian consolidation point",
           "Return {{ rma }} (order {{ order_number }}) has waited at the Norwegian consolidation point for at least "
           "{{ days }} days. Plan a collection to avoid storage fees.", ""),
}

# name, trigger, channels, audience, offset_days, conditions, texts
STARTER_RULES = (
    ("Return received", "parcel.arrived", ["email", "sms"], "customer", 0, {}, RETURN_RECEIVED),
    ("Refund issued", "refund.issued", ["email", "sms"], "customer", 0, {}, REFUND_ISSUED),
    ("Refund due reminder to staff", "time.refund_due", ["email"], "internal", 2, {}, REFUND_DUE_STAFF),
    ("Label not used reminder", "time.label_unused", ["email", "sms"], "customer", 7, {}, LABEL_UNUSED),
    ("Norway: waiting at consolidation", "time.consolidation_waiting", ["email"], "internal", 3, {"country": ["NO"]},
     CONSOLIDATION_WAITING),
)


def text_to_html(text: str) -> str:
    """A simple HTML body from the text body: paragraphs, with template tags kept (escaped on render)."""
    paragraphs = [p.replace("\n", "<br>\n") for p in text.split("\n\n")]
    return "\n".join(f"<p>{p}</p>" for p in paragraphs)


def install_starter_rules(session: Session) -> int:
    """Add the starter rules that are not there yet (matched by name and trigger); returns how many were added."""
    added = 0
    staff_address = service.get_policy(session).support_email
    for name, trigger, channels, audience, offset, conditions, texts in STARTER_RULES:
        exists = session.exec(select(NotificationRule.id).where(NotificationRule.name == name,
                                                                NotificationRule.trigger == trigger)).first()
        if exists is not None:
            continue
        rule = NotificationRule(name=name, trigger=trigger, channels=list(channels), audience=audience,
                                internal_recipients=[staff_address] if audience == "internal" else [],
                                conditions=dict(conditions), offset_days=offset, marketing=False, active=False,
                                created_at=utcnow(), updated_at=utcnow())
        session.add(rule)
        session.flush()
        for language, (subject, body, sms) in texts.items():
            session.add(NotificationTemplate(rule_id=rule.id, language=language, subject=subject, body_text=body,
                                             body_html=text_to_html(body), sms_text=sms))
        added += 1
    session.flush()
    return added
