"""The e-RS world of one sandbox: provider organisations, their services (directly bookable, indirectly bookable,
triage and advice) and clinicians, the referring GP practices and their users. Deterministic from the population
seed, so every session and every worker process sees the same world; no session state.

Service ids (3xxxx), user ids (12 digits starting 4) and provider ODS codes (R + two letters) are chosen outside the
published sandbox's examples (services 50, 11000-14000, 50001; users 021600556514, 921600556514; R69), so a request
naming a published example never reaches this world by accident."""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

from sandbox.runtime import current_sandbox
from sandbox.services.ers.context import PROVIDERS, RA, RC, RCA, REFERRERS, SPA, SPC, SPCA

DBS = "DIRECTLY_BOOKABLE"
IBS = "INDIRECTLY_BOOKABLE"
RAS = "TRIAGE"  # referral assessment service: referrals are sent for triage, not booked
ADVICE = "ADVICE"
BOOKABLE = (DBS, IBS)
KIND_LABEL = {DBS: "Clinic", IBS: "Outpatients", RAS: "Assessment Service", ADVICE: "Advice Service"}
# The request flow a service supports (eRS-RequestFlowType-1).
FLOW = {DBS: "APPOINTMENT_REQUEST", IBS: "APPOINTMENT_REQUEST", RAS: "TRIAGE_REQUEST",
        ADVICE: "ADVICE_AND_GUIDANCE_REQUEST"}
# The appointment type a service supports (eRS-AppointmentType-1).
APPOINTMENT_TYPE = {DBS: "FIRST_OUTPATIENT", IBS: "FIRST_OUTPATIENT", RAS: "ASSESSMENT_SERVICE",
                    ADVICE: "TELEPHONE_ASSESSMENT"}

# Specialties (SPECIALTY code system) and clinic types of each (CLINIC-TYPE code system).
SPECIALTIES: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "CARDIOLOGY": ("Cardiology", (("HEART_FAILURE", "Heart Failure"), ("LIPID_MANAGEMENT", "Lipid Management"))),
    "DERMATOLOGY": ("Dermatology", (("SKIN_LESION", "Skin Lesion"), ("ECZEMA", "Eczema"))),
    "ALLERGY": ("Allergy", (("ALLERGY_1", "Allergy"),)),
    "AUDIOLOGICAL_MEDICINE": ("Audiological Medicine", (("HEARING_LOSS", "Hearing Loss"),)),
    "ADULT_MENTAL_ILLNESS": ("Adult Mental Illness", (("GENERAL_ADULT_MENTAL_ILLNESS", "General Adult Mental Illness"),)),
}
TOWNS = ("Ashford", "Barnwell", "Carlow", "Dunmore", "Elmstead", "Fairholme", "Greyfield")
GIVEN = ("Alex", "Sam", "Priya", "Tom", "Aisha", "Owen", "Grace", "Ravi", "Megan", "Joe", "Fatima", "Liam")
FAMILY = ("Hughes", "Patel", "Okafor", "Reid", "Walsh", "Khan", "Morgan", "Evans", "Ahmed", "Lloyd", "Price")
PROVIDER_COUNT = 4
PRACTICE_COUNT = 12
PATIENTS_SCANNED = 400  # the practices are those of the first patients of the population


@dataclass(frozen=True)
class User:
    user_id: str
    given: str
    family: str
    ods: str
    business_functions: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.given} {self.family}"


@dataclass(frozen=True)
class Organisation:
    ods: str
    name: str
    kind: str  # "provider" or "practice"


@dataclass(frozen=True)
class HealthcareService:
    id: str
    name: str
    kind: str  # DBS, IBS, RAS, ADVICE
    specialty: str
    clinic_type: str
    ods: str  # the provider organisation
    clinicians: tuple[str, ...]  # user ids of the named clinicians
    wait_weeks: int

    @property
    def bookable(self) -> bool:
        return self.kind in BOOKABLE

    @property
    def specialty_display(self) -> str:
        return SPECIALTIES[self.specialty][0]

    @property
    def clinic_type_display(self) -> str:
        return dict(SPECIALTIES[self.specialty][1]).get(self.clinic_type, self.clinic_type)


@dataclass(frozen=True)
class World:
    seed: int
    providers: tuple[Organisation, ...]
    practices: tuple[Organisation, ...]
    services: dict[str, HealthcareService]
    users: dict[str, User]

    def service(self, service_id: str) -> HealthcareService | None:
        return self.services.get(service_id)

    def organisation(self, ods: str) -> Organisation | None:
        return next((o for o in self.providers + self.practices if o.ods == ods), None)

    def services_of(self, ods: str) -> list[HealthcareService]:
        return [s for s in self.services.values() if s.ods == ods]

    def users_of(self, ods: str) -> list[User]:
        return [u for u in self.users.values() if u.ods == ods]

    def user(self, user_id: str) -> User | None:
        return self.users.get(user_id)

    def default_user(self, ods: str, business_function: str) -> User | None:
        """The first user of an organisation holding a business function (the user an unattended call acts as)."""
        return next((u for u in self.users_of(ods) if business_function in u.business_functions), None)


def current_world() -> World:
    sandbox = current_sandbox()
    return _world_of(sandbox.settings.seed, sandbox.population)


@lru_cache(maxsize=8)
def _world_of(seed: int, population) -> World:
    """The world of one population (its practices are read once, not on every request)."""
    return build(seed, tuple(_practice_codes(population)))


def _practice_codes(population) -> list[str]:
    codes: list[str] = []
    for index in range(min(PATIENTS_SCANNED, population.size)):
        gp = population.person(index).gp
        if gp and gp not in codes:
            codes.append(gp)
        if len(codes) == PRACTICE_COUNT:
            break
    return codes


@lru_cache(maxsize=8)
def build(seed: int, practice_codes: tuple[str, ...]) -> World:
    rng = random.Random(f"ers-world:{seed}")
    used_ids: set[str] = set()

    def user_id() -> str:
        while True:
            candidate = f"4{rng.randint(0, 10**11 - 1):011d}"
            if candidate not in used_ids:
                used_ids.add(candidate)
                return candidate

    def person(ods: str, functions: tuple[str, ...]) -> User:
        return User(user_id(), rng.choice(GIVEN), rng.choice(FAMILY), ods, functions)

    providers: list[Organisation] = []
    letters = "ABCDEFGHJKLMNPQTVWXY"
    codes: set[str] = {"R69"}
    for town in rng.sample(TOWNS, PROVIDER_COUNT):
        code = "R69"
        while code in codes:
            code = "R" + rng.choice(letters) + rng.choice(letters)
        codes.add(code)
        providers.append(Organisation(code, f"{town} Hospitals NHS Trust", "provider"))
    users: dict[str, User] = {}
    clinicians: dict[str, list[str]] = {}
    for provider in providers:
        staff = [person(provider.ods, (SPC,)), person(provider.ods, (SPC,)), person(provider.ods, (SPCA, SPA))]
        users.update((u.user_id, u) for u in staff)
        clinicians[provider.ods] = [u.user_id for u in staff if SPC in u.business_functions]
    services: dict[str, HealthcareService] = {}
    number = 30001
    for s_index, (specialty, (display, clinic_types)) in enumerate(SPECIALTIES.items()):
        for k_index, kind in enumerate((DBS, IBS, RAS, ADVICE)):
            provider = providers[(s_index + k_index) % len(providers)]
            clinic_type = clinic_types[k_index % len(clinic_types)][0]
            town = provider.name.split(" ")[0]
            services[str(number)] = HealthcareService(
                str(number), f"{town} {display} {KIND_LABEL[kind]}", kind, specialty, clinic_type, provider.ods,
                tuple(clinicians[provider.ods]) if kind != ADVICE else (), rng.randint(2, 18))
            number += 1
    practices = tuple(Organisation(code, f"{rng.choice(TOWNS)} Medical Practice ({code})", "practice")
                      for code in practice_codes)
    for practice in practices:
        for functions in ((RC,), (RCA,), (RA,)):
            u = person(practice.ods, functions)
            users[u.user_id] = u
    return World(seed, tuple(providers), practices, services, users)


def is_provider_function(business_function: str) -> bool:
    return business_function in PROVIDERS


def is_referrer_function(business_function: str) -> bool:
    return business_function in REFERRERS
