"""Soft links, whichever model makes them: the link record, the state linkers share, how
candidate persons share one visitor's probability, and household links where they cannot."""

from ._households import MAX_HOUSEHOLD_PERSONS, HouseholdEvent, HouseholdLink, Households, household_rows
from ._journal import JournalledLinks, LinkJournal, LinkStates, ModelChange, link_states, restore_links
from ._link import LinkState, Record, SoftLink, UniquesOf, person_probabilities, person_shares

__all__ = [
    "MAX_HOUSEHOLD_PERSONS",
    "HouseholdEvent",
    "HouseholdLink",
    "Households",
    "JournalledLinks",
    "LinkJournal",
    "LinkState",
    "LinkStates",
    "ModelChange",
    "Record",
    "SoftLink",
    "UniquesOf",
    "household_rows",
    "link_states",
    "person_probabilities",
    "person_shares",
    "restore_links",
]
