"""Deterministic generator of the bundled bilingual (Korean/English) demo data.

Writes, into one folder (``examples/demo/data`` in the repository):

- ``instructions.jsonl``: every item, Alpaca fields ``instruction``, ``input`` (may be ""),
  ``output`` plus ``id``, ``skill``, ``lang`` (ko|en), ``format`` (text|json) and ``meta``
  (the generator's parameters for computed items: arithmetic and unit conversion);
- ``sft_train.jsonl`` / ``sft_val.jsonl`` / ``test.jsonl``: a split stratified by (lang, skill);
- ``dpo_train.jsonl`` / ``dpo_val.jsonl``: preference rows built from the SFT train items only;
- ``dpo_test.jsonl``: preference rows built from the test items (preference accuracy).

Answers are kept short (a word, a number with its unit, one sentence, or one line of JSON) so a
135M model fine-tuned for minutes on a CPU measurably improves over its base.

Regenerate with ``python -m harness.data.demo_data --out examples/demo/data``; the output is
byte-for-byte identical for the same seed.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

SEED = 1234
FILES = ("instructions", "sft_train", "sft_val", "test", "dpo_train", "dpo_val", "dpo_test")


def _table(text: str) -> list[list[str]]:
    """Rows separated by newlines or ';', cells by '|'."""
    return [[c.strip() for c in row.split("|")] for row in re.split(r"[;\n]", text) if row.strip()]


# --- hand-written tables -----------------------------------------------------------------
# subject | past tense | past participle | object | s(ingular)/p(lural) object
EN_PASSIVE = _table("""
the chef|cooked|cooked|the soup|s
the dog|chased|chased|the ball|s
Maria|wrote|written|the letter|s
the storm|damaged|damaged|the roof|s
the teacher|graded|graded|the exams|p
Tom|fixed|fixed|the bike|s
the company|hired|hired|ten new engineers|p
the children|built|built|a sandcastle|s
the wind|knocked over|knocked over|the fence|s
the mechanic|repaired|repaired|the car|s
the cat|broke|broken|the vase|s
the committee|approved|approved|the plan|s
the police|arrested|arrested|the thief|s
my brother|washed|washed|the dishes|p
the audience|loved|loved|the show|s
the gardener|planted|planted|the roses|p
Shakespeare|wrote|written|Hamlet|s
the baker|baked|baked|fresh bread|s
the team|won|won|the match|s
the manager|signed|signed|the contract|s
the nurse|helped|helped|the patient|s
the artist|drew|drawn|the portrait|s
the reporter|interviewed|interviewed|the mayor|s
the flood|destroyed|destroyed|the bridge|s
the kids|ate|eaten|the cookies|p
the pilot|flew|flown|the plane|s
the scientists|discovered|discovered|a new species|s
the waiter|served|served|the drinks|p
Anna|sang|sung|the song|s
the museum|displayed|displayed|the paintings|p
the mayor|opened|opened|the new library|s
the engineer|designed|designed|the bridge|s
the boy|kicked|kicked|the ball|s
the janitor|cleaned|cleaned|the windows|p
the hackers|stole|stolen|the passwords|p
the farmer|fed|fed|the chickens|p
the bees|stung|stung|the hiker|s
the students|painted|painted|the mural|s
""")
# 반말 | 존댓말(해요체)
KO_POLITE = _table("""
나는 커피를 좋아해.|저는 커피를 좋아해요.
오늘 날씨가 정말 좋다.|오늘 날씨가 정말 좋아요.
어디 가?|어디 가요?
밥 먹었어?|밥 먹었어요?
내가 할게.|제가 할게요.
이 책은 재미있어.|이 책은 재미있어요.
지금 바빠.|지금 바빠요.
내일 다시 올게.|내일 다시 올게요.
문 좀 닫아 줘.|문 좀 닫아 주세요.
나도 잘 모르겠어.|저도 잘 모르겠어요.
이거 얼마야?|이거 얼마예요?
동생이 집에 있어.|동생이 집에 있어요.
회의는 세 시에 시작해.|회의는 세 시에 시작해요.
길이 많이 막혀.|길이 많이 막혀요.
배가 너무 고파.|배가 너무 고파요.
창문 좀 열어 줄래?|창문 좀 열어 주실래요?
내 이름은 민수야.|제 이름은 민수예요.
이 가방은 내 거야.|이 가방은 제 거예요.
어제 친구를 만났어.|어제 친구를 만났어요.
여기서 기다려.|여기서 기다리세요.
같이 점심 먹자.|같이 점심 먹어요.
그 영화 봤어?|그 영화 봤어요?
나는 서울에 살아.|저는 서울에 살아요.
숙제를 벌써 다 했어.|숙제를 벌써 다 했어요.
물 좀 줘.|물 좀 주세요.
지하철역이 어디야?|지하철역이 어디예요?
시험이 너무 어려웠어.|시험이 너무 어려웠어요.
주말에 뭐 할 거야?|주말에 뭐 할 거예요?
커피가 너무 뜨거워.|커피가 너무 뜨거워요.
내가 도와줄게.|제가 도와드릴게요.
비가 오고 있어.|비가 오고 있어요.
이 음식은 너무 매워.|이 음식은 너무 매워요.
나는 학생이야.|저는 학생이에요.
천천히 말해 줘.|천천히 말해 주세요.
이따가 전화할게.|이따가 전화할게요.
그건 내 잘못이야.|그건 제 잘못이에요.
감기에 걸렸어.|감기에 걸렸어요.
손을 깨끗이 씻어.|손을 깨끗이 씻으세요.
""")
EN_ANTONYMS = _table("""
hot|cold; fast|slow; happy|sad; early|late; rich|poor; strong|weak
full|empty; wet|dry; clean|dirty; safe|dangerous; cheap|expensive; loud|quiet
deep|shallow; wide|narrow; heavy|light; true|false; buy|sell; win|lose
push|pull; accept|reject; increase|decrease; remember|forget; always|never; inside|outside
maximum|minimum; asleep|awake; friend|enemy; question|answer; north|south; day|night
enter|exit; borrow|lend; polite|rude; possible|impossible; success|failure; ancient|modern
big|small; visible|invisible
""")
KO_ANTONYMS = _table("""
크다|작다; 높다|낮다; 길다|짧다; 빠르다|느리다; 덥다|춥다; 밝다|어둡다
많다|적다; 넓다|좁다; 무겁다|가볍다; 두껍다|얇다; 쉽다|어렵다; 깨끗하다|더럽다
비싸다|싸다; 기쁘다|슬프다; 강하다|약하다; 부지런하다|게으르다; 깊다|얕다; 가깝다|멀다
입다|벗다; 열다|닫다; 사다|팔다; 이기다|지다; 좋다|나쁘다; 뜨겁다|차갑다
같다|다르다; 알다|모르다; 시작|끝; 성공|실패; 찬성|반대; 입구|출구
남쪽|북쪽; 동쪽|서쪽; 낮|밤; 증가|감소; 출발|도착; 질문|대답
장점|단점; 최대|최소
""")
EN_SPELLING = _table("""
recieve|receive; seperate|separate; definately|definitely; occured|occurred
untill|until; wierd|weird; beleive|believe; accomodate|accommodate
goverment|government; enviroment|environment; tommorow|tomorrow; neccessary|necessary
begining|beginning; existance|existence; foriegn|foreign; freind|friend
grammer|grammar; independant|independent; knowlege|knowledge; libary|library
occassion|occasion; publically|publicly; reccomend|recommend; succesful|successful
truely|truly; adress|address; arguement|argument; buisness|business
embarass|embarrass; noticable|noticeable; persistant|persistent; posession|possession
rythm|rhythm; thier|their; vaccum|vacuum; acheive|achieve
concious|conscious
""")
KO_SPELLING = _table("""
오랫만에 친구를 만났어요.|오랜만에 친구를 만났어요.
내일 다시 연락할께요.|내일 다시 연락할게요.
벌써 봄이 됬어요.|벌써 봄이 됐어요.
오늘이 몇일이에요?|오늘이 며칠이에요?
이게 왠일이야?|이게 웬일이야?
금새 어두워졌어요.|금세 어두워졌어요.
그는 중요한 역활을 맡았다.|그는 중요한 역할을 맡았다.
정말 희안한 일이다.|정말 희한한 일이다.
설겆이는 내가 할게.|설거지는 내가 할게.
일부로 그런 건 아니에요.|일부러 그런 건 아니에요.
웬지 기분이 좋아요.|왠지 기분이 좋아요.
그러면 안되요.|그러면 안 돼요.
방을 깨끗히 치웠다.|방을 깨끗이 치웠다.
곰곰히 생각해 보세요.|곰곰이 생각해 보세요.
점심으로 김치찌게를 먹었다.|점심으로 김치찌개를 먹었다.
어의가 없네요.|어이가 없네요.
위험을 무릎쓰고 나섰다.|위험을 무릅쓰고 나섰다.
사과의 갯수를 세어 보자.|사과의 개수를 세어 보자.
설레임을 안고 출발했다.|설렘을 안고 출발했다.
나의 바램은 건강이다.|나의 바람은 건강이다.
시험을 무사히 치뤘다.|시험을 무사히 치렀다.
진실이 들어났다.|진실이 드러났다.
구지 갈 필요는 없어요.|굳이 갈 필요는 없어요.
왠만하면 내일 와요.|웬만하면 내일 와요.
어떻해, 지갑을 잃어버렸어.|어떡해, 지갑을 잃어버렸어.
베게가 너무 높아요.|베개가 너무 높아요.
눈쌀을 찌푸렸다.|눈살을 찌푸렸다.
뒷처리는 제가 할게요.|뒤처리는 제가 할게요.
애시당초 무리한 계획이었다.|애당초 무리한 계획이었다.
돈을 빌려 달라고 닥달했다.|돈을 빌려 달라고 닦달했다.
육계장 한 그릇 주세요.|육개장 한 그릇 주세요.
문을 잠궜어요.|문을 잠갔어요.
꼭 합격하길 바래요.|꼭 합격하길 바라요.
떡볶기를 먹었다.|떡볶이를 먹었다.
내노라하는 선수들이 모였다.|내로라하는 선수들이 모였다.
선생님이 되서 기뻐요.|선생님이 돼서 기뻐요.
숙제를 하지 안았다.|숙제를 하지 않았다.
그 예기 들었어?|그 얘기 들었어?
""")
# English country (as used in a sentence) | capital | 나라 | 수도
CAPITALS = _table("""
France|Paris|프랑스|파리; Japan|Tokyo|일본|도쿄; Italy|Rome|이탈리아|로마
Germany|Berlin|독일|베를린; Spain|Madrid|스페인|마드리드; the United Kingdom|London|영국|런던
Egypt|Cairo|이집트|카이로; Canada|Ottawa|캐나다|오타와; Australia|Canberra|호주|캔버라
China|Beijing|중국|베이징; Russia|Moscow|러시아|모스크바; South Korea|Seoul|대한민국|서울
Thailand|Bangkok|태국|방콕; Vietnam|Hanoi|베트남|하노이; Greece|Athens|그리스|아테네
Portugal|Lisbon|포르투갈|리스본; Norway|Oslo|노르웨이|오슬로; Sweden|Stockholm|스웨덴|스톡홀름
Finland|Helsinki|핀란드|헬싱키; Denmark|Copenhagen|덴마크|코펜하겐; Austria|Vienna|오스트리아|빈
Poland|Warsaw|폴란드|바르샤바; Ireland|Dublin|아일랜드|더블린; Argentina|Buenos Aires|아르헨티나|부에노스아이레스
Peru|Lima|페루|리마; Mexico|Mexico City|멕시코|멕시코시티; Kenya|Nairobi|케냐|나이로비
India|New Delhi|인도|뉴델리; the Philippines|Manila|필리핀|마닐라; Hungary|Budapest|헝가리|부다페스트
the Czech Republic|Prague|체코|프라하; Belgium|Brussels|벨기에|브뤼셀; Chile|Santiago|칠레|산티아고
Cuba|Havana|쿠바|아바나; Mongolia|Ulaanbaatar|몽골|울란바토르; Iran|Tehran|이란|테헤란
Saudi Arabia|Riyadh|사우디아라비아|리야드; New Zealand|Wellington|뉴질랜드|웰링턴; Nigeria|Abuja|나이지리아|아부자
the United States|Washington, D.C.|미국|워싱턴 D.C.
""")
EN_FACTS = _table("""
Which planet is closest to the Sun?|Mercury
What is the largest planet in the solar system?|Jupiter
What is the chemical symbol for gold?|Au
What is the chemical formula of water?|H2O
How many legs does a spider have?|8
How many days are there in a leap year?|366
At what temperature in degrees Celsius does water freeze?|0 degrees Celsius
Who wrote Romeo and Juliet?|William Shakespeare
What is the largest ocean on Earth?|The Pacific Ocean
Which gas do plants absorb from the air for photosynthesis?|Carbon dioxide
How many sides does a hexagon have?|6
Which Korean king created Hangul?|King Sejong
What is the natural satellite of the Earth called?|The Moon
How many months are there in a year?|12
""")
KO_FACTS = _table("""
태양에서 가장 가까운 행성은 무엇입니까?|수성
태양계에서 가장 큰 행성은 무엇입니까?|목성
금의 원소 기호는 무엇입니까?|Au
물의 화학식은 무엇입니까?|H2O
거미의 다리는 몇 개입니까?|8개
한글을 창제한 왕은 누구입니까?|세종대왕
대한민국에서 가장 높은 산은 무엇입니까?|한라산
지구에서 가장 넓은 바다는 무엇입니까?|태평양
육각형의 변은 몇 개입니까?|6개
윤년은 며칠입니까?|366일
1년은 몇 개월입니까?|12개월
물이 어는 온도는 섭씨 몇 도입니까?|섭씨 0도
식물이 광합성을 할 때 흡수하는 기체는 무엇입니까?|이산화탄소
「로미오와 줄리엣」을 쓴 작가는 누구입니까?|셰익스피어
지구의 위성은 무엇입니까?|달
""")
# headline | is_stock_related (1/0) | summary
KO_NEWS = _table("""
코스피, 외국인 매수에 2% 상승 마감|1|코스피 2% 상승
한빛전자 주가 사상 최고치 경신|1|한빛전자 주가 최고치
반도체주 일제히 하락…코스닥 1.5% 내려|1|반도체주 하락
대성바이오, 임상 결과 발표 후 주가 급등|1|대성바이오 주가 급등
누리소프트, 코스닥 상장 첫날 30% 올라|1|누리소프트 상장 첫날 상승
개인 투자자, 이달 들어 주식 2조 원 순매수|1|개인 투자자 순매수
증시 변동성 확대에 투자자 불안|1|증시 변동성 확대
미래건설 공모주 청약에 10조 원 몰려|1|미래건설 공모주 흥행
한결화학, 주당 500원 배당 결정|1|한결화학 배당 결정
2차전지주 반등…관련 ETF 거래량 급증|1|2차전지주 반등
외국인 투자자, 사흘째 주식 순매도|1|외국인 주식 순매도
금융당국, 공매도 규제 강화 발표|1|공매도 규제 강화
코스닥 지수 3개월 만에 최저치|1|코스닥 최저치
새봄제약 시가총액 10조 원 돌파|1|새봄제약 시총 10조 돌파
실적 부진에 다온유통 주가 급락|1|다온유통 주가 급락
증권사들, 하반기 코스피 전망 상향|1|코스피 전망 상향
자동차주 강세…수출 호조 기대|1|자동차주 강세
한빛전자, 1조 원 규모 자사주 매입|1|한빛전자 자사주 매입
개장 직후 코스피 2,600선 회복|1|코스피 2,600선 회복
게임주 약세…신작 흥행 부진 여파|1|게임주 약세
해외 주식 투자자 역대 최대|1|해외 주식 투자 증가
동해조선 주가, 대규모 수주에 강세|1|동해조선 주가 강세
은행주 상승…배당 확대 기대감|1|은행주 상승
코스피 거래대금 석 달 만에 최대|1|코스피 거래대금 증가
내일 전국에 비…기온 뚝 떨어져|0|내일 전국 비
서울 벚꽃 다음 주 절정 예상|0|서울 벚꽃 절정
한국 축구 대표팀, 평가전서 2대 1 승리|0|축구 대표팀 승리
주말 고속도로 곳곳 정체|0|고속도로 정체
새 학기 맞아 초등학교 입학식 열려|0|초등학교 입학식
독감 환자 급증…예방 접종 당부|0|독감 환자 급증
가을 영화제 다음 달 개막|0|영화제 개막
제주 올레길 걷기 행사 인기|0|올레길 걷기 행사
박물관 특별전 관람객 10만 명 돌파|0|특별전 관람객 10만 명
폭염 특보 확대…온열 질환 주의|0|폭염 특보 확대
프로야구 개막전 매진|0|프로야구 개막전 매진
김장철 배추 가격 안정세|0|배추 가격 안정
지하철 2호선 운행 지연|0|지하철 운행 지연
한강 불꽃축제에 인파 몰려|0|불꽃축제 인파
전통시장 주말 장터 개장|0|주말 장터 개장
미세먼지 '나쁨'…외출 자제 권고|0|미세먼지 나쁨
구립 도서관 야간 개방 시범 운영|0|도서관 야간 개방
여자 배구 대표팀 결승 진출|0|여자 배구 결승 진출
첫눈 내린 설악산 등산객 북적|0|설악산 첫눈
어린이날 놀이공원 입장객 최다|0|놀이공원 입장객 최다
신인 가수 데뷔곡 음원 차트 1위|0|데뷔곡 차트 1위
태풍 북상…남해안 강풍 주의|0|태풍 북상
동네 병원 주말 진료 확대|0|주말 진료 확대
마라톤 대회로 도심 교통 통제|0|도심 교통 통제
""")
EN_NEWS = _table("""
Tech shares rally as the Nasdaq climbs 2%|1|Tech stocks rally
Brightway Motors stock hits a record high|1|Brightway stock at record high
Oil companies drag the S&P 500 lower|1|S&P 500 falls on oil stocks
Investors pile into chip stocks after strong earnings|1|Chip stocks rise
Greenleaf Foods shares plunge 15% after weak forecast|1|Greenleaf shares plunge
Northstar Bank announces $2 billion share buyback|1|Northstar share buyback
Startup Lumen debuts on the stock market, shares jump 40%|1|Lumen shares jump in debut
Dow ends flat as traders await jobs data|1|Dow ends flat
Bank stocks slide on interest rate worries|1|Bank stocks slide
Retail investors drive a surge in stock trading|1|Stock trading surges
Solaris Energy raises its quarterly dividend|1|Solaris raises dividend
European stock markets close higher on tech gains|1|European stocks rise
Heavy rain expected across the region this weekend|0|Weekend heavy rain
Local team wins the city marathon relay|0|Team wins marathon relay
New library opens downtown with late hours|0|New library opens
Scientists spot a rare bird in the national park|0|Rare bird spotted
School lunch menu adds more vegetables|0|More vegetables in lunches
Summer music festival draws record crowds|0|Festival draws record crowds
Road repairs to close Main Street next week|0|Main Street closure
City zoo welcomes twin panda cubs|0|Zoo welcomes panda cubs
Flu cases rise as winter begins|0|Flu cases rise
Museum launches free night tours|0|Free museum night tours
Snowstorm delays morning flights|0|Snowstorm delays flights
Chef shares a simple recipe for tomato soup|0|Tomato soup recipe
""")
# key | en from | en to | ko from | ko to | factor | op (mul: value*factor, div: value/factor)
UNITS = _table("""
km_m|kilometers|meters|킬로미터|미터|1000|mul
m_cm|meters|centimeters|미터|센티미터|100|mul
cm_mm|centimeters|millimeters|센티미터|밀리미터|10|mul
kg_g|kilograms|grams|킬로그램|그램|1000|mul
l_ml|liters|milliliters|리터|밀리리터|1000|mul
h_min|hours|minutes|시간|분|60|mul
min_s|minutes|seconds|분|초|60|mul
d_h|days|hours|일|시간|24|mul
w_d|weeks|days|주|일|7|mul
m_km|meters|kilometers|미터|킬로미터|1000|div
g_kg|grams|kilograms|그램|킬로그램|1000|div
ml_l|milliliters|liters|밀리리터|리터|1000|div
min_h|minutes|hours|분|시간|60|div
""")
EN_NAMES = ["Tom", "Mia", "Sam", "Lily", "Ben", "Emma", "Noah", "Ava"]
EN_ITEMS = ["apple", "pencil", "cookie", "sticker", "marble", "book", "orange", "card"]
EN_GOODS = ["notebook", "ticket", "pen", "mug"]
KO_NAMES = ["민수", "지우", "서연", "하준", "도윤", "수아"]
KO_ITEMS = ["사과", "사탕", "귤", "쿠키", "달걀", "구슬"]
KO_GOODS = [("공책", "권"), ("연필", "자루"), ("빵", "개"), ("우유", "팩")]

INSTRUCTIONS = {
    ("en", "rewrite"): "Rewrite the sentence in the passive voice.",
    ("ko", "rewrite"): "다음 반말 문장을 존댓말(해요체)로 바꾸세요.",
    ("en", "antonym"): "Give the antonym of the word.",
    ("ko", "antonym"): "다음 단어의 반대말을 쓰세요.",
    ("en", "spelling"): "Correct the spelling of the word.",
    ("ko", "spelling"): "다음 문장의 맞춤법을 바르게 고치세요.",
    ("en", "classify"): 'Is this headline about stocks? Answer in JSON with keys "is_stock_related" (true/false) '
                        'and "summary".',
    ("ko", "classify"): '주식 관련 뉴스인지 판단해 JSON으로 답하세요. 키: "is_stock_related"(true/false), '
                        '"summary"(요약)',
}
PADDING = {  # (before, after) the correct answer: the "rambling" rejected answers
    "en": [("Great question! Let me think about this carefully before I answer.\n\n",
            "\n\nI hope this helps. Let me know if you have any other questions!"),
           ("Sure! Here is my answer, explained step by step so that it is easy to follow.\n\n",
            "\n\nThat is my final answer, although other answers might also be possible."),
           ("Of course, I would be happy to help you with this task.\n\nAnswer: ",
            "\n\nFeel free to ask if anything is unclear.")],
    "ko": [("좋은 질문이에요! 답을 드리기 전에 차근차근 생각해 보겠습니다.\n\n",
            "\n\n도움이 되었으면 좋겠습니다. 더 궁금한 점이 있으면 언제든지 물어보세요!"),
           ("물론이죠! 이해하기 쉽도록 자세히 설명해 드릴게요.\n\n",
            "\n\n이것이 제 답변입니다. 다른 답도 있을 수 있으니 참고만 해 주세요."),
           ("네, 도와드릴게요. 먼저 문제를 꼼꼼히 살펴보겠습니다.\n\n답: ",
            "\n\n궁금한 점이 있으면 편하게 물어보세요.")],
}
COUNTS = {"arithmetic": 36, "unit": 36}  # generated items per language


# --- helpers ----------------------------------------------------------------------------
def josa(word: str, with_final: str, without_final: str) -> str:
    """Attach the Korean particle that fits the last syllable (e.g. 사과를 / 귤을)."""
    ch = word[-1]
    final = "가" <= ch <= "힣" and (ord(ch) - 0xAC00) % 28 != 0
    return word + (with_final if final else without_final)


def fmt(x: float) -> str:
    return f"{x:.10g}"


def arith_answer(lang: str, meta: dict) -> str:
    """The reference answer text for an arithmetic item (also used by the tests)."""
    n, unit = meta["answer"], meta["unit"]
    if lang == "ko":
        return f"{n:,}원" if unit == "원" else f"{n}{unit}"
    return f"{n} {unit}"


def compute_arith(meta: dict) -> int:
    a, b, op = meta["a"], meta["b"], meta["op"]
    return {"add": a + b, "sub": a - b, "mul": a * b, "div": a // b, "price": a * b}[op]


def compute_unit(meta: dict) -> float:
    v, f, op = meta["value"], meta["factor"], meta["op"]
    if op == "c2f":
        return v * 9 / 5 + 32
    return v * f if op == "mul" else v / f


def _item(lang, skill, instruction, inp, output, meta=None):
    return {"instruction": instruction, "input": inp, "output": output, "skill": skill, "lang": lang,
            "format": "json" if skill == "classify" else "text", "meta": meta or {}}


# --- item builders ----------------------------------------------------------------------
def _fixed(lang, skill, pairs):
    return [_item(lang, skill, INSTRUCTIONS[lang, skill], a, b) for a, b in pairs]


def _passive():
    pairs = []
    for subj, past, pp, obj, num in EN_PASSIVE:
        active = f"{subj[0].upper()}{subj[1:]} {past} {obj}."
        passive = f"{obj[0].upper()}{obj[1:]} {'were' if num == 'p' else 'was'} {pp} by {subj}."
        pairs.append((active, passive))
    return pairs


def _arithmetic(rng, lang, n):
    ops = ["add", "sub", "mul", "div", "price"]
    out, seen, i = [], set(), 0
    while len(out) < n:  # distinct questions only
        op = ops[i % len(ops)]
        i += 1
        if op == "add":
            a, b = rng.randint(3, 60), rng.randint(2, 40)
        elif op == "sub":
            a = rng.randint(20, 90)
            b = rng.randint(2, a - 2)
        elif op == "mul":
            a, b = rng.randint(2, 12), rng.randint(2, 12)
        elif op == "div":
            b = rng.randint(2, 9)
            a = b * rng.randint(2, 12)
        else:
            a = rng.choice([300, 500, 700, 800, 1000, 1200, 1500]) if lang == "ko" else rng.randint(2, 20)
            b = rng.randint(2, 9)
        meta = {"op": op, "a": a, "b": b, "answer": compute_arith({"op": op, "a": a, "b": b})}
        if lang == "en":
            name, item = rng.choice(EN_NAMES), rng.choice(EN_ITEMS)
            q = {
                "add": f"{name} has {a} {item}s and buys {b} more. How many {item}s does {name} have now?",
                "sub": f"{name} had {a} {item}s and gave {b} to a friend. How many {item}s are left?",
                "mul": f"There are {a} boxes with {b} {item}s in each box. How many {item}s are there in total?",
                "div": f"A teacher shares {a} {item}s equally among {b} children. "
                       f"How many {item}s does each child get?",
            }
            if op == "price":
                good = rng.choice(EN_GOODS)
                q["price"] = f"One {good} costs {a} dollars. How much do {b} {good}s cost?"
            meta["unit"] = "dollars" if op == "price" else f"{item}s"
        else:
            name, item = rng.choice(KO_NAMES), rng.choice(KO_ITEMS)
            q = {
                "add": f"{josa(name, '은', '는')} {josa(item, '을', '를')} {a}개 가지고 있었는데 {b}개를 더 "
                       f"샀습니다. {josa(item, '은', '는')} 모두 몇 개입니까?",
                "sub": f"{josa(name, '은', '는')} {item} {a}개 중에서 {b}개를 친구에게 주었습니다. "
                       f"남은 {josa(item, '은', '는')} 몇 개입니까?",
                "mul": f"한 상자에 {josa(item, '이', '가')} {b}개씩 들어 있습니다. {a}상자에는 "
                       f"{josa(item, '이', '가')} 모두 몇 개 들어 있습니까?",
                "div": f"{item} {a}개를 {b}명이 똑같이 나누어 가지면 한 사람이 몇 개씩 가집니까?",
            }
            if op == "price":
                good, cnt = rng.choice(KO_GOODS)
                q["price"] = f"{good} 한 {cnt}의 가격은 {a:,}원입니다. {good} {b}{josa(cnt, '은', '는')} 모두 얼마입니까?"
            meta["unit"] = "원" if op == "price" else "개"
        if q[op] not in seen:
            seen.add(q[op])
            out.append(_item(lang, "arithmetic", q[op], "", arith_answer(lang, meta), meta))
    return out


def unit_answer(lang: str, meta: dict) -> str:
    ans = fmt(meta["answer"])
    if meta["op"] == "c2f":
        return f"{ans} degrees Fahrenheit" if lang == "en" else f"화씨 {ans}도"
    return f"{ans} {meta['to']}" if lang == "en" else f"{ans}{meta['to']}"


def _units(rng, lang, n):
    out, seen, i = [], set(), 0
    while len(out) < n:  # distinct questions only
        i += 1
        if i % 6 == 0:
            c = rng.choice(range(-20, 45, 5))
            meta = {"op": "c2f", "value": c, "factor": None, "to": "F"}
            q = (f"Convert {c} degrees Celsius to Fahrenheit." if lang == "en"
                 else f"섭씨 {c}도는 화씨 몇 도입니까?")
        else:
            _, ef, et, kf, kt, factor, op = rng.choice(UNITS)
            factor = int(factor)
            if op == "mul":
                value = rng.randint(2, 12)
            else:
                value = int(rng.choice([0.5, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7.5, 8]) * factor)
            meta = {"op": op, "value": value, "factor": factor, "to": et if lang == "en" else kt}
            if lang == "en":
                q = f"Convert {value} {ef} to {et}."
            else:
                q = f"{value}{josa(kf, '은', '는')} {'며칠' if kt == '일' else '몇 ' + kt}입니까?"
        if q in seen:
            continue
        seen.add(q)
        ans = compute_unit(meta)
        meta["answer"] = int(ans) if float(ans).is_integer() else ans
        out.append(_item(lang, "unit", q, "", unit_answer(lang, meta), meta))
    return out


def _news(lang, rows):
    out = []
    for headline, label, summary in rows:
        ans = json.dumps({"is_stock_related": label == "1", "summary": summary}, ensure_ascii=False)
        out.append(_item(lang, "classify", INSTRUCTIONS[lang, "classify"], headline, ans))
    return out


def build_items(seed: int = SEED) -> list[dict]:
    rng = random.Random(seed)
    caps = rng.sample(CAPITALS, 26), rng.sample(CAPITALS, 26)
    items = (
        _fixed("en", "rewrite", _passive()) + _fixed("ko", "rewrite", KO_POLITE)
        + _fixed("en", "antonym", EN_ANTONYMS) + _fixed("ko", "antonym", KO_ANTONYMS)
        + _fixed("en", "spelling", EN_SPELLING) + _fixed("ko", "spelling", KO_SPELLING)
        + [_item("en", "fact", f"What is the capital of {c[0]}?", "", c[1]) for c in caps[0]]
        + [_item("en", "fact", q, "", a) for q, a in EN_FACTS]
        + [_item("ko", "fact", f"{c[2]}의 수도는 어디입니까?", "", c[3]) for c in caps[1]]
        + [_item("ko", "fact", q, "", a) for q, a in KO_FACTS]
        + _arithmetic(rng, "en", COUNTS["arithmetic"]) + _arithmetic(rng, "ko", COUNTS["arithmetic"])
        + _units(rng, "en", COUNTS["unit"]) + _units(rng, "ko", COUNTS["unit"])
        + _news("en", EN_NEWS) + _news("ko", KO_NEWS)
    )
    seen, unique, per_group = set(), [], {}
    for it in items:  # generated items can repeat: keep the first of each instruction+input
        key = (it["instruction"], it["input"])
        if key in seen:
            continue
        seen.add(key)
        k = per_group[it["lang"], it["skill"]] = per_group.get((it["lang"], it["skill"]), 0) + 1
        unique.append({"id": f"{it['lang']}-{it['skill']}-{k:03d}", **it})
    return unique


# --- splits and preference pairs --------------------------------------------------------
def split_items(items, seed: int = SEED, test_frac=0.10, val_frac=0.05):
    """Stratified by (lang, skill): every split holds every skill of both languages."""
    rng = random.Random(seed + 1)
    groups: dict[tuple, list] = {}
    for it in items:
        groups.setdefault((it["lang"], it["skill"]), []).append(it)
    train, val, test = [], [], []
    for key in sorted(groups):
        g = list(groups[key])
        rng.shuffle(g)
        frac = test_frac * 2 if key[1] == "classify" else test_frac  # demo-json needs enough rows
        n_test, n_val = max(3, round(len(g) * frac)), max(2, round(len(g) * val_frac))
        test += g[:n_test]
        val += g[n_test:n_test + n_val]
        train += g[n_test + n_val:]
    rng.shuffle(train)
    return train, sorted(val, key=lambda it: it["id"]), sorted(test, key=lambda it: it["id"])


def _pool_key(it):
    """Wrong facts and antonyms come from answers of the same kind (a capital for a capital)."""
    capital = it["skill"] == "fact" and any(it["output"] in (c[1], c[3]) for c in CAPITALS)
    return it["lang"], it["skill"], capital


def _wrong(rng, it, pools):
    """A wrong answer in the right format."""
    skill, lang, meta, out = it["skill"], it["lang"], it["meta"], it["output"]
    if skill in ("rewrite", "spelling"):
        return it["input"]  # left unchanged
    if skill == "arithmetic":
        step = 100 if meta["unit"] == "원" else 1
        delta = step * rng.choice([d for d in (-10, -3, -2, -1, 1, 2, 3, 10) if meta["answer"] + step * d > 0])
        return arith_answer(lang, {**meta, "answer": meta["answer"] + delta})
    if skill == "unit":
        if meta["op"] == "c2f":
            wrong = meta["value"]  # the Celsius number, unconverted
        else:
            wrong = meta["answer"] * 10 if meta["op"] == "mul" else meta["value"]
        return unit_answer(lang, {**meta, "answer": wrong})
    if skill == "classify":
        obj = json.loads(out)
        obj["is_stock_related"] = not obj["is_stock_related"]
        return json.dumps(obj, ensure_ascii=False)
    return rng.choice([a for a in pools[_pool_key(it)] if a != out])  # fact / antonym


def _off_format(rng, it):
    obj = json.loads(it["output"])
    label, summary = obj["is_stock_related"], obj["summary"]
    variants = [
        json.dumps({"is_stock_related": label}),                              # missing field
        f"{{'is_stock_related': {label}, 'summary': '{summary}'}}",           # not JSON
        (("Yes" if label else "No") if it["lang"] == "en" else ("네" if label else "아니요"))
        + f", {summary}",                                                     # plain text
    ]
    return rng.choice(variants)


def preference_rows(items, seed: int, pools):
    rng = random.Random(seed)
    rows = []
    for it in items:
        kinds = ["wrong", "off_format", "rambling"] if it["skill"] == "classify" else ["wrong"] * 3 + ["rambling"] * 2
        kind = rng.choice(kinds)
        if kind == "wrong":
            rejected = _wrong(rng, it, pools)
        elif kind == "off_format":
            rejected = _off_format(rng, it)
        else:
            head, tail = rng.choice(PADDING[it["lang"]])
            rejected = head + it["output"] + tail
        prompt = it["instruction"] + (f"\n\n{it['input']}" if it["input"] else "")
        rows.append({"id": it["id"], "prompt": prompt, "chosen": it["output"], "rejected": rejected,
                     "instruction": it["instruction"], "input": it["input"], "lang": it["lang"],
                     "skill": it["skill"], "rejected_kind": kind})
    return rows


def build(seed: int = SEED) -> dict[str, list[dict]]:
    items = build_items(seed)
    pools: dict[tuple, list] = {}
    for it in items:
        pools.setdefault(_pool_key(it), []).append(it["output"])
    train, val, test = split_items(items, seed)
    dpo = preference_rows(train, seed + 2, pools)
    n_val = max(16, len(dpo) // 20)
    return {"instructions": items, "sft_train": train, "sft_val": val, "test": test,
            "dpo_train": dpo[n_val:], "dpo_val": dpo[:n_val],
            "dpo_test": preference_rows(test, seed + 3, pools)}


def write(out_dir, seed: int = SEED) -> dict[str, int]:
    """Write every file into ``out_dir``; returns the row count of each."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, rows in build(seed).items():
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        (out / f"{name}.jsonl").write_text(text, encoding="utf-8", newline="\n")
        counts[name] = len(rows)
    return counts


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Write the bundled bilingual demo data (deterministic).")
    ap.add_argument("--out", default="examples/demo/data", help="output folder")
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    for name, n in write(args.out, args.seed).items():
        print(f"{name}.jsonl: {n}")


if __name__ == "__main__":
    main()
