"""UK post towns with their county and postcode area, so that a synthetic address hangs together."""

# (post town, county, postcode area, highest district number used here)
POST_TOWNS: tuple[tuple[str, str, str, int], ...] = (
    ("Leeds", "West Yorkshire", "LS", 29), ("Bradford", "West Yorkshire", "BD", 24),
    ("Wakefield", "West Yorkshire", "WF", 17), ("Sheffield", "South Yorkshire", "S", 36),
    ("York", "North Yorkshire", "YO", 32), ("Hull", "East Riding of Yorkshire", "HU", 20),
    ("Manchester", "Greater Manchester", "M", 46), ("Bolton", "Greater Manchester", "BL", 9),
    ("Oldham", "Greater Manchester", "OL", 16), ("Liverpool", "Merseyside", "L", 40),
    ("Preston", "Lancashire", "PR", 26), ("Blackburn", "Lancashire", "BB", 18),
    ("Lancaster", "Lancashire", "LA", 23), ("Carlisle", "Cumbria", "CA", 28),
    ("Newcastle upon Tyne", "Tyne and Wear", "NE", 71), ("Sunderland", "Tyne and Wear", "SR", 9),
    ("Durham", "County Durham", "DH", 9), ("Middlesbrough", "North Yorkshire", "TS", 29),
    ("Birmingham", "West Midlands", "B", 99), ("Coventry", "West Midlands", "CV", 47),
    ("Wolverhampton", "West Midlands", "WV", 16), ("Walsall", "West Midlands", "WS", 15),
    ("Stoke-on-Trent", "Staffordshire", "ST", 21), ("Derby", "Derbyshire", "DE", 75),
    ("Nottingham", "Nottinghamshire", "NG", 34), ("Leicester", "Leicestershire", "LE", 67),
    ("Lincoln", "Lincolnshire", "LN", 13), ("Northampton", "Northamptonshire", "NN", 18),
    ("Peterborough", "Cambridgeshire", "PE", 38), ("Cambridge", "Cambridgeshire", "CB", 25),
    ("Norwich", "Norfolk", "NR", 35), ("Ipswich", "Suffolk", "IP", 33),
    ("Colchester", "Essex", "CO", 16), ("Chelmsford", "Essex", "CM", 24),
    ("Luton", "Bedfordshire", "LU", 7), ("St Albans", "Hertfordshire", "AL", 10),
    ("Oxford", "Oxfordshire", "OX", 49), ("Reading", "Berkshire", "RG", 45),
    ("Milton Keynes", "Buckinghamshire", "MK", 46), ("Guildford", "Surrey", "GU", 52),
    ("Brighton", "East Sussex", "BN", 45), ("Canterbury", "Kent", "CT", 21),
    ("Maidstone", "Kent", "ME", 20), ("Southampton", "Hampshire", "SO", 53),
    ("Portsmouth", "Hampshire", "PO", 41), ("Bournemouth", "Dorset", "BH", 31),
    ("Salisbury", "Wiltshire", "SP", 11), ("Bath", "Somerset", "BA", 22),
    ("Bristol", "City of Bristol", "BS", 49), ("Gloucester", "Gloucestershire", "GL", 56),
    ("Exeter", "Devon", "EX", 39), ("Plymouth", "Devon", "PL", 35),
    ("Truro", "Cornwall", "TR", 27), ("Taunton", "Somerset", "TA", 24),
    ("Worcester", "Worcestershire", "WR", 15), ("Hereford", "Herefordshire", "HR", 9),
    ("Shrewsbury", "Shropshire", "SY", 25), ("Chester", "Cheshire", "CH", 66),
    ("Warrington", "Cheshire", "WA", 16), ("London", "Greater London", "SE", 28),
    ("London", "Greater London", "N", 22), ("London", "Greater London", "E", 18),
    ("Croydon", "Greater London", "CR", 9), ("Cardiff", "South Glamorgan", "CF", 83),
    ("Swansea", "West Glamorgan", "SA", 73), ("Douglas", "Isle of Man", "IM", 9),
)

# Letters allowed in the inward code of a UK postcode (C, I, K, M, O and V are never used there).
INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"

STREET_KINDS = (
    "Road", "Street", "Lane", "Close", "Avenue", "Drive", "Way", "Crescent", "Grove", "Gardens", "Terrace",
    "Place", "Court", "Hill", "Walk", "Row", "Mews", "Square", "Green", "Rise", "Parade", "View", "Park",
)

LOCALITIES = ("Northside", "Old Town", "Westfield", "Eastgate", "Southbank", "Highfield", "Meadowbank", "Riverside")

LONG_GIVEN = ("Maximilian", "Christabella", "Bartholomew", "Wilhelmina", "Montgomery", "Anastasiya", "Evangelina",
              "Konstantinos", "Alexandrina", "Sebastianus")
LONG_FAMILY = ("Featherstonehaugh-Cholmondeley", "Montgomery-Wolstenholme", "Vanderbilt-Fotheringham",
               "Worthington-Smythe-Oakley", "Abercrombie-Fitzwilliams")
