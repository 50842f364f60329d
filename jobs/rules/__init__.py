"""One module per rule of rules.md. Each rule turns the bronze tables as known at T into *candidates*:

    person_id, popup_code, reason_type, cause,
    start            first instant the rule holds with this evidence (knowledge and event time both),
    stop, stop_basis instant the hold ends by itself (time-based release or evidence withdrawn), or null,
    release_mode     'auto' (ends at stop) | 'verify' (popup 3: community verification) | 'nat' (popup 4),
    nat_from         popup 4: a negative NAT sampled at or after this instant releases,
    exposure_end     popup 3: last exposure (for a `cleared` verification),
    registered_only  the evidence reached the person only through `registered` phone links,
    evidence_known_at, evidence (JSON)

`jobs.rules.episodes` turns candidates plus release events into reasons with raised_at / released_at, so
that outcomes never depend on when runs happen.
"""
